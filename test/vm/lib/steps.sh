# Guest-side helpers, uploaded to /run/steps.sh after boot and sourced by every step script
# (kept out of the image so editing them does not rebuild it). Steps print ONE JSON object as
# their last stdout line; the host parses and asserts on it.

export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# jstr TEXT -> a JSON string literal.
jstr() {
  local s=$1
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\n'/\\n}
  s=${s//$'\r'/\\r}
  s=${s//$'\t'/\\t}
  s=$(printf '%s' "$s" | tr -d '\000-\010\013\014\016-\037')
  printf '"%s"' "$s"
}

# jarr LINE... -> a JSON array of strings.
jarr() {
  local first=1 x
  printf '['
  for x in "$@"; do
    [ $first = 1 ] || printf ','
    first=0
    jstr "$x"
  done
  printf ']'
}

now_ms() { local s; s=$(cat /proc/uptime); s=${s%% *}; echo $(( ${s%.*} * 1000 + 10#${s#*.} * 10 )); }

# iscsi_start INITIATOR_NAME [KEY=VALUE iscsid.conf overrides...]: writes the initiator name and
# starts iscsid (open-iscsi's daemon; no systemd in the guest).
iscsi_start() {
  local name=$1; shift
  mkdir -p /etc/iscsi /var/lib/iscsi /run/lock/iscsi
  echo "InitiatorName=$name" >/etc/iscsi/initiatorname.iscsi
  local kv k
  for kv in "$@"; do
    k=${kv%%=*}
    re=$(printf '%s' "$k" | sed 's/[].[]/\\&/g')
    sed -i "/^[# ]*${re} *=.*/d" /etc/iscsi/iscsid.conf
    echo "$k = ${kv#*=}" >>/etc/iscsi/iscsid.conf
  done
  if ! pidof iscsid >/dev/null; then
    iscsid || return 1
  fi
  local i
  for i in $(seq 1 50); do pidof iscsid >/dev/null && break; sleep 0.1; done
}

# wait_path PATH SECONDS: waits until PATH exists (block device); prints nothing, returns 1 on timeout.
wait_path() {
  local p=$1 t=$(( $2 * 10 )) i
  for i in $(seq 1 "$t"); do
    [ -b "$p" ] && return 0
    sleep 0.1
  done
  return 1
}

# wait_gone PATH SECONDS
wait_gone() {
  local p=$1 t=$(( $2 * 10 )) i
  for i in $(seq 1 "$t"); do
    [ -e "$p" ] || return 0
    sleep 0.1
  done
  return 1
}

# dev_json PATH: {"path":…,"dev":"/dev/sdX","size":bytes,"ro":0|1,"vendor":…,"model":…}
dev_json() {
  local p=$1 real name
  real=$(readlink -f "$p")
  name=${real##*/}
  printf '{"path":%s,"dev":%s,"size":%s,"ro":%s,"vendor":%s,"model":%s,"wwid":%s}\n' \
    "$(jstr "$p")" "$(jstr "$real")" "$(blockdev --getsize64 "$real" 2>/dev/null || echo 0)" \
    "$(cat "/sys/block/$name/ro" 2>/dev/null || echo -1)" \
    "$(jstr "$(cat "/sys/block/$name/device/vendor" 2>/dev/null | sed 's/ *$//')")" \
    "$(jstr "$(cat "/sys/block/$name/device/model" 2>/dev/null | sed 's/ *$//')")" \
    "$(jstr "$(cat "/sys/block/$name/device/wwid" 2>/dev/null)")"
}

# sessions_json: {"sessions":[lines of `iscsiadm -m session`]}
sessions_json() {
  local out
  out=$(iscsiadm -m session 2>/dev/null)
  local -a lines=()
  [ -n "$out" ] && mapfile -t lines <<<"$out"
  printf '{"sessions":%s}\n' "$(jarr "${lines[@]}")"
}

# write_files DIR COUNT: COUNT files of varied sizes (1 KiB .. 4 MiB) of random data, then a
# sha256 manifest of them in /run/manifest.sha256 (outside the filesystem under test).
write_files() {
  local dir=$1 count=$2 i size total=0
  mkdir -p "$dir/sub"
  for i in $(seq 1 "$count"); do
    size=$(( (i * 7919 % 4096 + 1) * 1024 ))
    head -c "$size" /dev/urandom >"$dir/sub/f$i.bin"
    total=$((total + size))
  done
  (cd "$dir" && find . -type f -name '*.bin' | sort | xargs sha256sum) >/run/manifest.sha256
  sync -f "$dir"
  printf '{"files":%d,"bytes":%d,"manifest":%s}\n' "$count" "$total" "$(jstr "$(cat /run/manifest.sha256)")"
}
