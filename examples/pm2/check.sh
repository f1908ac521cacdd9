#!/usr/bin/env bash
# Tests the pm2 recipe (ecosystem.config.cjs + app.mjs) under a real pm2:
# a crash, a reload, a stop, kill_timeout, stop_exit_codes, the log files,
# and Ctrl-C on pm2-runtime. About 30 s; exits 1 if a check fails.
#
#   examples/pm2/check.sh             (npm run build first: the app imports dist/)
#
# PORT (default 3456) must be free; 127.0.0.1 only. pm2 is installed into
# PM2_DIR (default $TMPDIR/fastify-hangup-pm2) if it is not there. Everything
# pm2 writes goes to a temporary PM2_HOME, removed at the end: ~/.pm2 is not
# touched.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
PORT=${PORT:-3456}
PM2_DIR=${PM2_DIR:-${TMPDIR:-/tmp}/fastify-hangup-pm2}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/hangup-pm2-check.XXXXXX")
export PM2_HOME=$WORK/home
BASE="http://127.0.0.1:$PORT"
T0=$(date +%s%N)
FAILED=0
RUNTIME_PID=
WATCHDOG_PID=
BG=()
PM2=$PM2_DIR/node_modules/.bin/pm2
PM2_RUNTIME=$PM2_DIR/node_modules/.bin/pm2-runtime

now_ms () { echo $(( ($(date +%s%N) - T0) / 1000000 )); }
pass () { echo "ok    $*"; }
fail () { echo "FAIL  $*"; FAILED=$((FAILED + 1)); }
check () { # check DESCRIPTION COMMAND...: pass if the command succeeds
  local description=$1; shift
  if "$@"; then pass "$description"; else fail "$description"; fi
}

cleanup () {
  trap - EXIT INT TERM
  [ -n "$RUNTIME_PID" ] && kill -TERM "$RUNTIME_PID" 2>/dev/null
  [ -x "$PM2" ] && "$PM2" kill >/dev/null 2>&1
  [ -n "$WATCHDOG_PID" ] && kill "$WATCHDOG_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'echo "interrupted"; exit 2' INT TERM

# --- pm2 ---------------------------------------------------------------------
if [ ! -x "$PM2" ]; then
  echo "installing pm2 into $PM2_DIR"
  # --prefix: inside another npm project (this repository's .ci/cache), a plain
  # `npm install` would install into that project instead.
  mkdir -p "$PM2_DIR" && npm install --prefix "$PM2_DIR" --no-save --no-package-lock --no-audit --no-fund --loglevel=error pm2@^7 >/dev/null || { echo "cannot install pm2"; exit 1; }
  [ -x "$PM2" ] || { echo "pm2 is not at $PM2 after the install"; exit 1; }
fi
[ -f "$HERE/../../dist/esm/index.js" ] || { echo "dist/ is missing: run npm run build"; exit 1; }
if curl -s -o /dev/null -m 1 "$BASE/"; then echo "port $PORT is in use"; exit 1; fi
# Bounded, whatever happens below.
( trap 'kill "$timer" 2>/dev/null; exit 0' TERM
  sleep 120 & timer=$!; wait "$timer"; echo "check.sh: timed out"; kill -TERM $$ ) &
WATCHDOG_PID=$!
echo "pm2 $(node -p "require('$PM2_DIR/node_modules/pm2/package.json').version"), node $(node --version), PM2_HOME=$PM2_HOME, port $PORT"

# --- helpers -----------------------------------------------------------------
# procs: one line per instance: "pm_id pid status restart_time exit_code"
procs () {
  "$PM2" jlist 2>/dev/null | node -e '
    let s = require("fs").readFileSync(0, "utf8"); s = s.slice(s.indexOf("["))
    for (const p of JSON.parse(s)) console.log(p.pm_id, p.pid, p.pm2_env.status, p.pm2_env.restart_time, p.pm2_env.exit_code ?? "-")'
}
field () { procs | awk -v id="$1" -v col="$2" '$1 == id { print $col }'; } # field PM_ID COLUMN
pids () { procs | awk '$2 != 0 { print $2 }' | sort | tr '\n' ' '; }
# slow NAME MS: a request in the background (its own connection); NAME.out: "code curl_exit body"
slow () {
  { body=$(curl -s -m 20 "$BASE/slow?ms=$2" -w ' %{http_code}'); rc=$?
    echo "${body##* } $rc ${body% *}" > "$WORK/$1.out"; } &
  BG+=($!)
}
code_of () { cut -d' ' -f1 "$WORK/$1.out"; }
# poller SECONDS NAME: GET / every 50 ms, one line per request: "code body"
poller () {
  { local end=$(( $(date +%s%N) + $1 * 1000000000 ))
    while [ "$(date +%s%N)" -lt $end ]; do
      r=$(curl -s -m 2 "$BASE/" -w ' %{http_code}'); echo "${r##* } ${r% *}"; sleep 0.05
    done > "$WORK/$2.poll"; } &
  BG+=($!)
}
wait_bg () { wait "${BG[@]}"; BG=(); } # the background requests and pollers
poll_failures () { awk '$1 != "200"' "$WORK/$1.poll" | wc -l; }
poll_count () { wc -l < "$WORK/$1.poll"; }
wait_until () { # wait_until SECONDS COMMAND...: true once the command succeeds
  local end=$(( $(date +%s) + $1 )); shift
  while [ "$(date +%s)" -le $end ]; do "$@" && return 0; sleep 0.1; done; return 1
}
serving () { curl -s -o /dev/null -m 1 "$BASE/"; }
all_online () { [ "$(procs | awk '$3 == "online" && $2 != 0' | wc -l)" -eq 2 ] && serving; }
start_recipe () { # start_recipe [CONFIG]
  "$PM2" delete all >/dev/null 2>&1
  PORT=$PORT "$PM2" start "${1:-$HERE/ecosystem.config.cjs}" >/dev/null 2>&1
  wait_until 10 all_online
}

# --- 1. start ----------------------------------------------------------------
echo "== start (cluster mode, 2 instances, wait_ready)"
check "pm2 start: 2 instances online and serving" start_recipe
seen=$(for i in 1 2 3 4 5 6; do curl -s -m 1 "$BASE/"; echo; done | sort -u | wc -l)
check "requests are spread over both instances" [ "$seen" -eq 2 ]
check "/ready answers 200" [ "$(curl -s -o /dev/null -m 1 -w '%{http_code}' "$BASE/ready")" = 200 ]

# --- 2. crash ----------------------------------------------------------------
echo "== crash: 4 slow requests (2 s) in flight, then /crash"
before=$(pids)
poller 4 crash
for i in 1 2 3 4; do slow crash-slow$i 2000; done
sleep 0.3
crash_headers=$(curl -s -i -m 5 "$BASE/crash" | tr -d '\r')
check "/crash answers 500 with Connection: close" grep -qi '^connection: close' <<< "$crash_headers"
check "  ... and status 500" grep -q '^HTTP/1.1 500' <<< "$crash_headers"
wait_bg
for i in 1 2 3 4; do check "slow request $i finished with 200 ($(cut -d' ' -f3- "$WORK/crash-slow$i.out"))" [ "$(code_of crash-slow$i)" = 200 ]; done
check "no request to / failed during the crash ($(poll_count crash) sent)" [ "$(poll_failures crash)" -eq 0 ]
restarted () { [ "$(procs | awk '$4 == 1 && $3 == "online"' | wc -l)" -eq 1 ] && all_online; }
check "pm2 restarted the crashed instance (restart count 1) and it serves" wait_until 10 restarted
restarted_id=$(procs | awk '$4 == 1 { print $1 }' | head -1)
# From the app's log: the crash, the crashed process's last line, the replacement's "Server listening".
node -e '
  const lines = require("fs").readFileSync(process.argv[1], "utf8").split("\n").filter(Boolean).map((l) => { try { return JSON.parse(l) } catch { return {} } })
  const crash = lines.find((l) => l.level === 60)
  const last = lines.filter((l) => l.pid === crash.pid).pop()
  const up = lines.find((l) => l.pid !== crash.pid && l.time > crash.time && /listening/.test(l.msg))
  console.log(`      crash -> last line of the crashed process ${last.time - crash.time} ms -> replacement listening ${up.time - crash.time} ms`)
' "$PM2_HOME/logs/hangup-example-out-${restarted_id:-0}.log" 2>/dev/null || true
check "pm2 saw exit code 1" [ "$(field "${restarted_id:-x}" 5)" = 1 ]
crashed=$(comm -23 <(tr ' ' '\n' <<< "$before" | grep .) <(pids | tr ' ' '\n' | grep .) | head -1)
check "a slow request on the crashed instance (pid ${crashed:-?}) was drained" grep -q "\"pid\":${crashed:-x}," "$WORK"/crash-slow*.out

# --- 3. reload ---------------------------------------------------------------
echo "== pm2 reload with 4 slow requests (2.5 s) in flight"
before=$(pids)
poller 7 reload
for i in 1 2 3 4; do slow reload-slow$i 2500; done
sleep 0.3
check "pm2 reload succeeds" "$PM2" reload hangup-example >/dev/null 2>&1
wait_bg
for i in 1 2 3 4; do check "slow request $i finished with 200" [ "$(code_of reload-slow$i)" = 200 ]; done
check "no request to / failed during the reload ($(poll_count reload) sent)" [ "$(poll_failures reload)" -eq 0 ]
after=$(pids)
check "both instances were replaced" [ -z "$(comm -12 <(tr ' ' '\n' <<< "$before" | grep .) <(tr ' ' '\n' <<< "$after" | grep .))" ]
check "the old instances exited 0" [ "$(grep -c 'hangup-example:_old_[01]\] exited with code \[0\]' "$PM2_HOME/pm2.log")" -eq 2 ]

# --- 4. stop: kill_timeout above gracePeriod + 1.5 s ---------------------------
echo "== pm2 stop with 2 slow requests (3 s) in flight, kill_timeout 12 s"
for i in 1 2; do slow stop-slow$i 3000; done
sleep 0.3
"$PM2" stop hangup-example >/dev/null 2>&1
wait_bg
for i in 1 2; do check "slow request $i finished with 200" [ "$(code_of stop-slow$i)" = 200 ]; done
check "both instances stopped with exit code 0" [ "$(procs | awk '$3 == "stopped" && $5 == 0' | wc -l)" -eq 2 ]
check "pm2 did not SIGKILL" [ "$(grep -c 'sending SIGKILL' "$PM2_HOME/pm2.log")" -eq 0 ]

# --- 5. log files ------------------------------------------------------------
echo "== log files (pm2 cluster mode writes them through a stream in the app process)"
for f in "$PM2_HOME"/logs/hangup-example-out-*.log; do
  inc=$(grep -c '"incoming request"' "$f"); done_=$(grep -c '"request completed"' "$f"); closes=$(grep -c '"graceful close started"' "$f")
  check "$(basename "$f"): every request logged as completed ($done_/$inc), closes logged ($closes)" [ "$inc" -eq "$done_" -a "$closes" -ge 2 ]
done

# --- 6. stop_exit_codes ------------------------------------------------------
echo "== a SIGINT from outside pm2 (exit 0) is not restarted: stop_exit_codes [0]"
start_recipe >/dev/null
victim=$(field 0 2)
kill -INT "$victim"
stopped_0 () { [ "$(field 0 3)" = stopped ]; }
check "instance 0 (pid $victim, sent SIGINT by hand) is stopped" wait_until 5 stopped_0
check "  ... with exit code 0, and not restarted" [ "$(field 0 5) $(field 0 4)" = "0 0" ]
check "instance 1 still serves" serving

# --- 7. kill_timeout at pm2's default (1600 ms) cuts a longer drain -----------
echo "== negative control: the recipe with pm2's default kill_timeout (1600 ms)"
cat > "$WORK/default-kill-timeout.config.cjs" <<EOF
const recipe = require('$HERE/ecosystem.config.cjs')
module.exports = { apps: recipe.apps.map((app) => ({ ...app, kill_timeout: 1600 })) }
EOF
start_recipe "$WORK/default-kill-timeout.config.cjs" >/dev/null
for i in 1 2; do slow cut-slow$i 5000; done
sleep 0.3
"$PM2" stop hangup-example >/dev/null 2>&1
wait_bg
for i in 1 2; do check "slow request $i was cut (curl code $(code_of cut-slow$i), exit $(cut -d' ' -f2 "$WORK/cut-slow$i.out"))" [ "$(code_of cut-slow$i)" = 000 ]; done
check "pm2 logged the SIGKILL" grep -q 'still alive after 1600ms, sending SIGKILL' "$PM2_HOME/pm2.log"
"$PM2" kill >/dev/null 2>&1

# --- 8. pm2-runtime and Ctrl-C -----------------------------------------------
echo "== pm2-runtime, Ctrl-C (SIGINT to the whole process group: each worker gets 2 signals)"
PORT=$PORT setsid "$PM2_RUNTIME" start "$HERE/ecosystem.config.cjs" > "$WORK/runtime.out" 2>&1 &
RUNTIME_PID=$!
# (not `pm2 jlist` here: without a daemon to answer, it would start one)
both_serve () { [ "$(for i in 1 2 3 4; do curl -s -m 1 "$BASE/"; echo; done | grep pid | sort -u | wc -l)" -eq 2 ]; }
check "pm2-runtime serves from 2 instances" wait_until 10 both_serve
for i in 1 2 3 4; do slow rt-slow$i 2500; done
sleep 0.3
kill -INT -- -"$RUNTIME_PID"
wait "$RUNTIME_PID" 2>/dev/null; rc=$?
RUNTIME_PID=
wait_bg
for i in 1 2 3 4; do check "slow request $i finished with 200" [ "$(code_of rt-slow$i)" = 200 ]; done
check "both workers exited 0" [ "$(grep -c 'exited with code \[0\]' "$WORK/runtime.out")" -eq 2 ]
check "pm2-runtime exited 0" [ "$rc" -eq 0 ]

echo "== $((FAILED)) failed, $(( $(now_ms) / 1000 )) s"
[ "$FAILED" -eq 0 ]
