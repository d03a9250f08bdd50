# Sourced by test/vm/build-image.sh and docker/build.sh: no mirror host is named in the repository.
# apt_mirror SUITE: the URI of the first enabled "deb" source for SUITE in apt's configuration
# (under $APT_SOURCES_ROOT, default /, for the tests).
apt_mirror() {
  local suite=$1 f root=${APT_SOURCES_ROOT:-}
  local -a files=()
  [ -f "$root/etc/apt/sources.list" ] && files+=("$root/etc/apt/sources.list")
  for f in "$root"/etc/apt/sources.list.d/*.list "$root"/etc/apt/sources.list.d/*.sources; do [ -f "$f" ] && files+=("$f"); done
  [ ${#files[@]} -gt 0 ] || return 1
  for f in "${files[@]}"; do
    case "$f" in
      *.sources)
        # deb822: blank-line separated stanzas of "Key: value" fields.
        awk -v suite="$suite" '
          function flush() { if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " suite " ") && enabled != "no" && uri != "") { print uri; found = 1; exit } types = suites = uri = ""; enabled = "yes" }
          BEGIN { enabled = "yes" }
          /^[ \t]*#/ { next }
          /^[ \t]*$/ { flush(); next }
          { k = tolower($1); sub(/:$/, "", k); v = $0; sub(/^[^:]*:[ \t]*/, "", v)
            if (k == "types") types = v; else if (k == "suites") suites = v; else if (k == "enabled") enabled = tolower(v)
            else if (k == "uris") { split(v, u, /[ \t]+/); uri = u[1] } }
          END { if (!found) flush() }' "$f" ;;
      *)
        # One-line format: deb [options] URI SUITE COMPONENT...
        awk -v suite="$suite" '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ } if ($(i + 1) == suite) { print $i; exit } }' "$f" ;;
    esac
  done | head -1 | grep .
}
