# shellcheck shell=bash disable=SC2034  # the variables are used by start and stop
# Shared settings of slurm/local-cluster/start and stop (sourced, not run).
#
#   REPEVAL_SLURM_DIR    state folder (default ${TMPDIR:-/tmp}/repeval-slurm-<uid>)
#   REPEVAL_SLURM_PORT   slurmctld port (default 16817; slurmd uses the next one).
#                        Not Slurm's 6817/6818, so a real Slurm on the same machine
#                        is left alone.

# The daemons live in sbin, which is not on every user's PATH.
PATH=$PATH:/usr/sbin:/sbin
export PATH

lc_dir=${REPEVAL_SLURM_DIR:-${TMPDIR:-/tmp}/repeval-slurm-$(id -u)}
lc_port=${REPEVAL_SLURM_PORT:-16817}
lc_node=localhost
lc_conf=$lc_dir/slurm.conf
lc_munge_dir=$lc_dir/munge
lc_munge_socket=$lc_munge_dir/munge.socket.2
lc_munge_pid=$lc_munge_dir/munged.pid
lc_ctld_pid=$lc_dir/run/slurmctld.pid
lc_slurmd_pid=$lc_dir/run/slurmd.pid
lc_log=$lc_dir/log

lc_say() { echo "local-cluster: $*" >&2; }
lc_die() {
  echo "local-cluster: error: $*" >&2
  exit 1
}

# pid from a pid file if that process is alive, else nothing
lc_live_pid() {
  local f=$1 p
  [ -r "$f" ] || return 1
  read -r p <"$f" 2>/dev/null || return 1
  case "$p" in '' | *[!0-9]*) return 1 ;; esac
  kill -0 "$p" 2>/dev/null || return 1
  # a zombie is not alive
  case "$(sed -n 's/^State:[[:space:]]*\(.\).*/\1/p' "/proc/$p/status" 2>/dev/null)" in Z | X) return 1 ;; esac
  echo "$p"
}

# every daemon alive and the controller answering
lc_running() {
  lc_live_pid "$lc_munge_pid" >/dev/null && lc_live_pid "$lc_ctld_pid" >/dev/null &&
    lc_live_pid "$lc_slurmd_pid" >/dev/null &&
    SLURM_CONF=$lc_conf timeout 10 scontrol ping 2>/dev/null | grep -q "is UP"
}

# the last lines of every log, for error reports
lc_log_tails() {
  local f
  for f in "$lc_munge_dir/munged.log" "$lc_log/slurmctld.log" "$lc_log/slurmd.log" "$lc_log"/*.stdout; do
    [ -s "$f" ] || continue
    echo "---- last lines of $f" >&2
    tail -n 25 "$f" >&2
  done
}

# the lines a shell needs to use the cluster
lc_print_env() {
  echo "export SLURM_CONF=$lc_conf"
}

# TERM a daemon from its pid file, KILL it if it is still there after 15 s
lc_kill_pidfile() {
  local f=$1 what=$2 p
  if p=$(lc_live_pid "$f"); then
    kill -TERM "$p" 2>/dev/null || true
    for _ in $(seq 1 150); do
      lc_live_pid "$f" >/dev/null || break
      sleep 0.1
    done
    if lc_live_pid "$f" >/dev/null; then
      lc_say "$what (pid $p) ignored SIGTERM for 15 s; sending SIGKILL"
      kill -KILL "$p" 2>/dev/null || true
    fi
    lc_say "stopped $what (pid $p)"
  fi
  rm -f "$f"
}

# cancel the jobs, then stop slurmd, slurmctld and munged (the ones recorded in
# the pid files of this state folder; nothing else is touched)
lc_stop_daemons() {
  local ids
  if lc_live_pid "$lc_ctld_pid" >/dev/null; then
    ids=$(SLURM_CONF=$lc_conf timeout 10 squeue -h -o %A 2>/dev/null || true)
    if [ -n "$ids" ]; then
      lc_say "cancelling the jobs still queued or running: $(echo "$ids" | tr '\n' ' ')"
      # shellcheck disable=SC2086  # one argument per job id
      SLURM_CONF=$lc_conf timeout 10 scancel --quiet $ids 2>/dev/null || true
      for _ in $(seq 1 30); do
        [ -z "$(SLURM_CONF=$lc_conf timeout 10 squeue -h -o %i 2>/dev/null)" ] && break
        sleep 0.5
      done
    fi
  fi
  lc_kill_pidfile "$lc_slurmd_pid" slurmd
  lc_kill_pidfile "$lc_ctld_pid" slurmctld
  lc_kill_pidfile "$lc_munge_pid" munged
  rm -rf "$lc_dir/sessions" "$lc_dir/started-by"
}
