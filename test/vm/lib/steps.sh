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
    # In the foreground, so its log (there is no syslog here) lands in /run/iscsid.log for diagnostics.
    (setsid iscsid -f >/run/iscsid.log 2>&1 </dev/null &)
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

# ---------------------------------------------------------------------------------------------
# dm-multipath and ALUA (for the multi-node scenarios: several glfs-target nodes, one LUN file)
# ---------------------------------------------------------------------------------------------

# multipath_conf_glfs [NO_PATH_RETRY] [POLLING_INTERVAL]: writes /etc/multipath.conf as
# gluster-block recommends for its LIO targets, for our INQUIRY vendor/product ("GLFS" /
# "glfs-target"): one path per group (failover), groups ordered by ALUA priority (prio alua: an
# active/optimized port group first), back to a better group as soon as it returns (failback
# immediate), TUR path checker, the kernel's ALUA device handler (hardware_handler "1 alua"),
# I/O queued for NO_PATH_RETRY checker intervals (default 120; "queue" = forever, "fail") when
# every path is down. detect_prio/detect_checker off so the settings above are the ones used.
# Prints {"conf":…,"device":{the GLFS device section as multipath -t merged it}}.
multipath_conf_glfs() {
  local npr=${1:-120} poll=${2:-5}
  mkdir -p /etc/multipath
  cat >/etc/multipath.conf <<CONF
defaults {
    user_friendly_names no
    find_multipaths no
    polling_interval $poll
}
blacklist {
    devnode "^(ram|loop|fd|md|sr|scd|st|vd|nbd|zram)"
}
devices {
    device {
        vendor "GLFS"
        product "glfs-target"
        path_grouping_policy "failover"
        path_selector "round-robin 0"
        failback immediate
        path_checker "tur"
        detect_checker no
        prio "alua"
        detect_prio no
        hardware_handler "1 alua"
        no_path_retry $npr
        rr_weight "uniform"
    }
}
CONF
  # multipath -t prints the configuration as multipath-tools read it: our device section must be in it.
  local dev
  dev=$(multipath -t 2>/dev/null | awk '
    /^[ \t]*device \{/ { inb = 1; blk = ""; next }
    inb && /^[ \t]*\}/ { if (blk ~ /"vendor":"GLFS"/ && blk ~ /"product":"glfs-target"/) { print "{" substr(blk, 2) "}"; exit } inb = 0; next }
    inb { k = $1; $1 = ""; v = substr($0, 2); gsub(/^"|"$/, "", v); gsub(/\\/, "\\\\", v); gsub(/"/, "\\\"", v); blk = blk ",\"" k "\":\"" v "\"" }')
  printf '{"conf":%s,"device":%s}\n' "$(jstr "$(cat /etc/multipath.conf)")" "${dev:-null}"
}

# multipath_json [MAP]: `multipath -ll [MAP]` as JSON. Works with or without multipathd.
#   {"maps":[{"name","wwid","dm","vendor","product","size","features","hwhandler","wp",
#             "groups":[{"group":1,"policy","prio","status","paths":[{"hcil","dev","devt","dm","checker","state"}]}]}],
#    "paths":[{"dev","map","group","groupPrio","groupStatus","dm","checker","state","hcil","dhState","accessState","preferred"}]}
# dm: active|failed; checker: ready|faulty|ghost|shaky|…; state: running|offline|…. group is
# 1-based in the order multipath lists it (the first group is the one the kernel tries first);
# dhState/accessState/preferred are the kernel's ALUA view of that sd device (sysfs).
multipath_json() {
  multipath -ll "$@" 2>/dev/null | multipath_ll_decode
}

# multipath_ll_decode [SYSBLOCK]: `multipath -ll` text on stdin -> the JSON above (sysfs read
# under SYSBLOCK, default /sys/block). Attributes the kernel refuses (access_state without a
# handler: EINVAL) come out empty.
multipath_ll_decode() {
  awk -v sysblk="${1:-/sys/block}" '
    function js(s) { gsub(/\\/, "\\\\", s); gsub(/"/, "\\\"", s); return "\"" s "\"" }
    # Through cat: a sysfs read error (EINVAL) is fatal to mawk getline from a file.
    function rd(f,   c, v) { v = ""; c = "cat \047" f "\047 2>/dev/null"; if ((c | getline v) <= 0) v = ""; close(c); return v }
    function endgroup() { if (g > 0) { groups = groups (gn > 1 ? "," : "") grp "\"paths\":[" gpaths "]}" } g = 0 }
    function endmap() { endgroup(); if (m) maps = maps (nm > 1 ? "," : "") mapj ",\"groups\":[" groups "]}"; m = 0 }
    /^[^ |`]/ && / dm-[0-9]+ / {
      endmap(); m = 1; nm++; gn = 0; groups = ""
      name = $1; wwid = $1; i = 2
      if ($2 ~ /^\(.*\)$/) { wwid = substr($2, 2, length($2) - 2); i = 3 }
      dm = $i; vp = $(i + 1); for (k = i + 2; k <= NF; k++) vp = vp " " $k
      split(vp, a, ","); vendor = a[1]; product = substr(vp, length(a[1]) + 2)
      mapj = "{\"name\":" js(name) ",\"wwid\":" js(wwid) ",\"dm\":" js(dm) ",\"vendor\":" js(vendor) ",\"product\":" js(product)
      next
    }
    m && /^size=/ {
      line = $0
      if (match(line, /size=[^ ]+/)) mapj = mapj ",\"size\":" js(substr(line, RSTART + 5, RLENGTH - 5))
      if (match(line, /features=\047[^\047]*\047/)) mapj = mapj ",\"features\":" js(substr(line, RSTART + 10, RLENGTH - 11))
      if (match(line, /hwhandler=\047[^\047]*\047/)) mapj = mapj ",\"hwhandler\":" js(substr(line, RSTART + 11, RLENGTH - 12))
      if (match(line, /wp=[^ ]+/)) mapj = mapj ",\"wp\":" js(substr(line, RSTART + 3, RLENGTH - 3))
      next
    }
    m && /policy=/ {
      endgroup(); g = 1; gn++; gpaths = ""; np = 0
      pol = ""; pr = "null"; st = ""
      if (match($0, /policy=\047[^\047]*\047/)) pol = substr($0, RSTART + 8, RLENGTH - 9)
      if (match($0, /prio=-?[0-9]+/)) pr = substr($0, RSTART + 5, RLENGTH - 5)
      if (match($0, /status=[a-z]+/)) st = substr($0, RSTART + 7, RLENGTH - 7)
      gprio = pr; gstat = st
      grp = "{\"group\":" gn ",\"policy\":" js(pol) ",\"prio\":" pr ",\"status\":" js(st) ","
      next
    }
    m && g && match($0, /[0-9]+:[0-9]+:[0-9]+:[0-9]+ +[a-z]+[0-9]* +[0-9]+:[0-9]+ +[a-z]+ +[a-z]+ +[a-z]+/) {
      split(substr($0, RSTART, RLENGTH), f, / +/)
      np++
      gpaths = gpaths (np > 1 ? "," : "") "{\"hcil\":" js(f[1]) ",\"dev\":" js(f[2]) ",\"devt\":" js(f[3]) ",\"dm\":" js(f[4]) ",\"checker\":" js(f[5]) ",\"state\":" js(f[6]) "}"
      d = sysblk "/" f[2] "/device/"
      pref = rd(d "preferred_path")
      flat = flat (nf++ ? "," : "") "{\"dev\":" js(f[2]) ",\"map\":" js(name) ",\"group\":" gn ",\"groupPrio\":" gprio ",\"groupStatus\":" js(gstat) \
        ",\"dm\":" js(f[4]) ",\"checker\":" js(f[5]) ",\"state\":" js(f[6]) ",\"hcil\":" js(f[1]) \
        ",\"dhState\":" js(rd(d "dh_state")) ",\"accessState\":" js(rd(d "access_state")) ",\"preferred\":" (pref == "" ? "null" : pref) "}"
      next
    }
    END { endmap(); printf "{\"maps\":[%s],\"paths\":[%s]}\n", maps, flat }'
}

# od_bytes: stdin (binary) -> decimal byte values, one line, space separated.
od_bytes() { od -An -v -tu1 | tr -s ' \n' ' ' | sed 's/^ //; s/ $//'; }

# Names of the ALUA asymmetric access states (SPC-4 §6.37, table 166).
alua_state_name() {
  case $1 in
    0) echo active/optimized ;; 1) echo active/non-optimized ;; 2) echo standby ;; 3) echo unavailable ;;
    14) echo offline ;; 15) echo transitioning ;; *) echo "reserved($1)" ;;
  esac
}

# rtpg_decode: REPORT TARGET PORT GROUPS parameter data (SPC-4 §6.37) as decimal bytes on stdin
# (od_bytes) -> {"format":0|1,"groups":[{"id","state","stateName","pref","supported":{t,o,lbd,u,s,an,ao},
# "status","vendor","ports":[relative target port ids]}]}. Length-only (0) or extended (1) header.
rtpg_decode() {
  local -a b
  read -r -a b || true
  local n=${#b[@]}
  [ "$n" -ge 4 ] || { echo '{"error":"short RTPG data"}'; return 1; }
  local len=$(( b[0] << 24 | b[1] << 16 | b[2] << 8 | b[3] )) fmt=0 o=4
  if [ "$n" -ge 8 ] && [ $(( (b[4] >> 4) & 7 )) = 1 ]; then fmt=1; o=8; fi
  local end=$(( 4 + len )); [ "$end" -le "$n" ] || end=$n
  local out="" first=1
  while [ $(( o + 8 )) -le "$end" ]; do
    local st=$(( b[o] & 15 )) pref=$(( b[o] >> 7 & 1 )) s1=${b[o+1]}
    local id=$(( b[o+2] << 8 | b[o+3] )) status=${b[o+5]} vend=${b[o+6]} cnt=${b[o+7]}
    local ports="" p=$(( o + 8 )) k
    for ((k = 0; k < cnt && p + 4 <= end; k++, p += 4)); do
      ports+="${ports:+,}$(( b[p+2] << 8 | b[p+3] ))"
    done
    [ $first = 1 ] || out+=,
    first=0
    out+=$(printf '{"id":%d,"state":%d,"stateName":"%s","pref":%d,"supported":{"t":%d,"o":%d,"lbd":%d,"u":%d,"s":%d,"an":%d,"ao":%d},"status":%d,"vendor":%d,"ports":[%s]}' \
      "$id" "$st" "$(alua_state_name "$st")" "$pref" $(( s1 >> 7 & 1 )) $(( s1 >> 6 & 1 )) $(( s1 >> 4 & 1 )) \
      $(( s1 >> 3 & 1 )) $(( s1 >> 2 & 1 )) $(( s1 >> 1 & 1 )) $(( s1 & 1 )) "$status" "$vend" "$ports")
    o=$p
  done
  printf '{"format":%d,"groups":[%s]}\n' "$fmt" "$out"
}

# rtpg_json DEV [--extended]: REPORT TARGET PORT GROUPS through sg_rtpg.
#   {"dev","ok":true,"format","groups":[…],"text":"<sg_rtpg -d output>"}, or
#   {"dev","ok":false,"code":<sg_rtpg exit code>,"error":"<its stderr>"} (5 = ILLEGAL REQUEST: not supported).
rtpg_json() {
  local dev=$1 ext=${2:-} raw code text
  raw=$(mktemp)
  sg_rtpg -r $ext "$dev" >"$raw" 2>"$raw.err"
  code=$?
  if [ "$code" != 0 ]; then
    printf '{"dev":%s,"ok":false,"code":%d,"error":%s}\n' "$(jstr "$dev")" "$code" "$(jstr "$(cat "$raw.err")")"
    rm -f "$raw" "$raw.err"
    return 0
  fi
  text=$(sg_rtpg -d $ext "$dev" 2>&1)
  local dec
  dec=$(od_bytes <"$raw" | rtpg_decode)
  rm -f "$raw" "$raw.err"
  # Splice the decoded object's fields in: {"dev","ok",<format, groups>,"text"}.
  dec=${dec#\{}
  printf '{"dev":%s,"ok":true,%s,"text":%s}\n' "$(jstr "$dev")" "${dec%\}}" "$(jstr "$text")"
}

# bytes_ascii B...: decimal bytes -> text (NULs and trailing spaces dropped).
bytes_ascii() {
  local x o esc="" s
  for x in "$@"; do
    [ "$x" = 0 ] && continue
    printf -v o '\\%03o' "$x"
    esc+=$o
  done
  printf -v s "$esc"
  printf '%s' "${s%"${s##*[! ]}"}"
}

# vpd83_decode: Device Identification VPD page (SPC-4 §7.8.6) as decimal bytes on stdin ->
# {"designators":[{"assoc":"lu"|"port"|"device","type":N,"typeName","proto","codeSet","piv","value"[,"relPort"|"tpg"]}]}
# value is text for ASCII/UTF-8 designators, lower-case hex otherwise; relPort (type 4) and tpg
# (type 5) are the identifiers as numbers.
vpd83_decode() {
  local -a b
  read -r -a b || true
  local n=${#b[@]}
  [ "$n" -ge 4 ] && [ "${b[1]}" = 131 ] || { echo '{"error":"not a VPD 0x83 page"}'; return 1; }
  local end=$(( 4 + (b[2] << 8 | b[3]) )) o=4 out="" first=1
  [ "$end" -le "$n" ] || end=$n
  local -a tnames=(vendor t10 eui64 naa relport tpg lugroup md5 scsiname protocol uuid) anames=(lu port device reserved)
  while [ $(( o + 4 )) -le "$end" ]; do
    local cs=$(( b[o] & 15 )) proto=$(( b[o] >> 4 )) piv=$(( b[o+1] >> 7 & 1 )) as=$(( b[o+1] >> 4 & 3 ))
    local ty=$(( b[o+1] & 15 )) l=${b[o+3]} val extra=""
    local -a v=("${b[@]:o+4:l}")
    if [ "$l" = 0 ]; then
      val=\"\"
    elif [ "$cs" = 2 ] || [ "$cs" = 3 ]; then
      val=$(jstr "$(bytes_ascii "${v[@]}")")
    else
      printf -v val '%02x' "${v[@]}"
      val=\"$val\"
    fi
    if [ "$l" -ge 2 ] && { [ "$ty" = 4 ] || [ "$ty" = 5 ]; }; then
      extra=$(printf ',"%s":%d' "$([ "$ty" = 4 ] && echo relPort || echo tpg)" $(( v[l-2] << 8 | v[l-1] )))
    fi
    [ $first = 1 ] || out+=,
    first=0
    out+=$(printf '{"assoc":"%s","type":%d,"typeName":"%s","proto":%d,"codeSet":%d,"piv":%d,"value":%s%s}' \
      "${anames[as]}" "$ty" "${tnames[ty]:-reserved}" "$proto" "$cs" "$piv" "$val" "$extra")
    o=$(( o + 4 + l ))
  done
  printf '{"designators":[%s]}\n' "$out"
}

# inquiry_decode: standard INQUIRY data (SPC-4 §6.6.2) as decimal bytes on stdin ->
# {"type","tpgs","threePC","vendor","product","revision"}. TPGS: 0 no ALUA, 1 implicit, 2 explicit, 3 both.
inquiry_decode() {
  local -a b
  read -r -a b || true
  [ "${#b[@]}" -ge 36 ] || { echo '{"error":"short INQUIRY data"}'; return 1; }
  printf '{"type":%d,"tpgs":%d,"threePC":%d,"vendor":%s,"product":%s,"revision":%s}\n' \
    $(( b[0] & 31 )) $(( b[5] >> 4 & 3 )) $(( b[5] >> 3 & 1 )) "$(jstr "$(bytes_ascii "${b[@]:8:8}")")" \
    "$(jstr "$(bytes_ascii "${b[@]:16:16}")")" "$(jstr "$(bytes_ascii "${b[@]:32:4}")")"
}

# scsi_json DEV: one SCSI disk's identity and ALUA view:
#   {"dev","inquiry":{…tpgs…},"vpd83":{"designators":[…],"text":"<sg_inq -p 0x83>"},"rtpg":{rtpg_json},
#    "dhState","accessState","preferred"} (the last three from sysfs: the kernel device handler's view).
scsi_json() {
  local dev=$1 name sys inq vpd vtext rtpg
  name=${dev##*/}
  sys=/sys/block/$name/device
  inq=$(sg_inq -r "$dev" 2>/dev/null | od_bytes | inquiry_decode) || inq=${inq:-null}
  vpd=$(sg_inq -r -p 0x83 "$dev" 2>/dev/null | od_bytes | vpd83_decode) || vpd=${vpd:-null}
  vtext=$(sg_inq -p 0x83 "$dev" 2>&1)
  rtpg=$(rtpg_json "$dev")
  [ "$vpd" = null ] || vpd="${vpd%\}},\"text\":$(jstr "$vtext")}"
  printf '{"dev":%s,"inquiry":%s,"vpd83":%s,"rtpg":%s,"dhState":%s,"accessState":%s,"preferred":%s}\n' \
    "$(jstr "$dev")" "$inq" "$vpd" "$rtpg" "$(jstr "$(cat "$sys/dh_state" 2>/dev/null)")" \
    "$(jstr "$(cat "$sys/access_state" 2>/dev/null)")" "$(cat "$sys/preferred_path" 2>/dev/null || echo null)"
}

# glfs_disks: the sd devices whose INQUIRY vendor is GLFS (our target), one /dev/sdX a line.
glfs_disks() {
  local d
  for d in /sys/block/sd*; do
    [ -e "$d" ] && [ "$(sed 's/ *$//' "$d/device/vendor" 2>/dev/null)" = GLFS ] && echo "/dev/${d##*/}"
  done
  return 0
}

# alua_report [DEV...]: the ALUA smoke check (default: every GLFS disk): per disk scsi_json, then
# multipath_json, plus whether the kernel's ALUA handler is loaded.
#   {"module":true|false,"disks":[scsi_json…],"multipath":{multipath_json}}
alua_report() {
  local -a devs=("$@")
  # (no process substitution: the guest has no /dev/fd)
  local list
  [ ${#devs[@]} -gt 0 ] || { list=$(glfs_disks); [ -z "$list" ] || mapfile -t devs <<<"$list"; }
  local d out="" mod=false
  [ -d /sys/module/scsi_dh_alua ] && mod=true
  for d in "${devs[@]}"; do out+="${out:+,}$(scsi_json "$d")"; done
  printf '{"module":%s,"disks":[%s],"multipath":%s}\n' "$mod" "$out" "$(multipath_json)"
}
