#!/usr/bin/env bash
# Provide a real RabbitMQ 4.3.x broker for integration tests: scripts/rabbitmq4.sh with Debian's
# unstable suite (sid: rabbitmq-server 4.3.x, Erlang 29), beside the 4.0 node, never instead of it.
#
# Usage: scripts/rabbitmq43.sh start|stop|status|env   (env prints RABBITMQ4_URL and
# RABBITMQ4_MANAGEMENT_URL, like rabbitmq4.sh, for this node)
#
#   AMQP        127.0.0.1:5693     management  127.0.0.1:15693
#   dist        25693              epmd        4393 (127.0.0.1 only)
#   chroot      /var/cache/topo/rabbitmq4-sid   node rabbit43@localhost, run folder /var/lib/topo-rmq43
#
# Its settings are rabbitmq4.sh's under the prefix TOPO_RMQ43_ (TOPO_RMQ43_AMQP_PORT,
# TOPO_RMQ43_MGMT_PORT, TOPO_RMQ43_DIST_PORT, TOPO_RMQ43_EPMD_PORT, TOPO_RMQ43_RUN_DIR,
# TOPO_RMQ43_ROOT, TOPO_RMQ43_WAIT, TOPO_RMQ43_EXTRA_CONF), so that a TOPO_RMQ4_* meant for the
# 4.0 node never moves this one onto its ports. TOPO_RMQ4_MIRROR is shared.
#
# A wrapper, not a second copy: the start/stop/PID/cache logic stays in one place.
set -euo pipefail
for v in AMQP_PORT MGMT_PORT DIST_PORT EPMD_PORT RUN_DIR ROOT WAIT EXTRA_CONF; do
  n=TOPO_RMQ43_$v
  if [[ -n ${!n+set} ]]; then export "TOPO_RMQ4_$v=${!n}"; else unset "TOPO_RMQ4_$v"; fi
done
export TOPO_RMQ4_SUITE=sid
exec "$(dirname "${BASH_SOURCE[0]}")/rabbitmq4.sh" "$@"
