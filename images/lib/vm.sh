# Shared by the image's QEMU tests (images/boot-test, images/power-cut-test): sourced, not run.
# What every test of the image needs on this host: a CA and socat terminating TLS in front of the
# host's RabbitMQ and of a relay (the box requires amqps/https off its own machine), the relay
# with a database of its own enrolling boxes, head office's provisioning of one kitchen (queue,
# reference, one-time enrolment token), a sparse copy of the image with a kitchen.toml on its
# boot partition, and booting and stopping it under qemu-system-aarch64 -M virt.
#
# The sourcing script sets VM_NAME (log prefix) before sourcing, then calls, in order:
#   vm_setup IMAGE LOGS      tools, services, temporary directory ($tmp), clean-up on exit
#   vm_tls                   CA, certificate for 10.0.2.2, socat in front of RabbitMQ (amqps)
#   vm_relay NAME            the relay on the host (database kitchen_NAME), socat in front (https)
#   vm_kitchen ID ROLE       the kitchen's role, queue and reference; $enrol_token
#   vm_disk                  $disk: the image's copy, 1 GiB larger; $boot_part for mtools
#   vm_kitchen_toml FILE     a good kitchen.toml (store kitchen-bk-01, $pairing_code, the CA)
#   vm_boot CONSOLE          starts qemu in the background ($qemu), agent on $agent
#   vm_power_off CONSOLE     the power button, waited for; checks the agent stopped cleanly
# Every wait has a deadline (wait_for); everything started is stopped on exit ($pids).

log() { echo "$VM_NAME: $*" >&2; }
fail() { log "FAILED: $*"; exit 1; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() { local p=$(( 20000 + RANDOM % 20000 )); while port_open $p; do p=$((p + 1)); done; echo $p; }
# wait_for SECONDS WHAT COMMAND...: polls COMMAND every second until it succeeds.
wait_for() {
  local limit=$1 what=$2; shift 2
  local started=$SECONDS
  until "$@" >/dev/null 2>&1; do
    [ $(( SECONDS - started )) -lt "$limit" ] || fail "$what not within $limit s"
    sleep 1
  done
}

# vm_setup IMAGE LOGS: the kernel and initrd beside IMAGE, the host's tools and services, a
# temporary directory ($tmp) and the clean-up of everything in $pids on exit.
vm_setup() {
  image=$1 logs=$2
  kernel=$(dirname "$image")/vmlinuz initrd=$(dirname "$image")/initrd.img
  images/host-setup >&2
  eval "$(scripts/services)"
  command -v socat >/dev/null || fail "socat is missing (images/host-setup installs it)"
  tmp=$(mktemp -d)
  mkdir -p "$logs"
  pids=()
  trap vm_cleanup EXIT
  log "image $image: $(( $(stat -c %s "$image") >> 20 )) MiB"
}
vm_cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}

# vm_tls: TLS for the box's links (amqps and https are required off the box, docs/security.md):
# a CA made here, a certificate for 10.0.2.2 (the host as the VM sees it), socat terminating TLS
# in front of the host's RabbitMQ ($amqps_port); the CA reaches the box as kitchen.toml's ca_pem.
vm_tls() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj "/CN=$VM_NAME CA" -keyout "$tmp/ca.key" -out "$tmp/ca.pem" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=10.0.2.2" \
    -keyout "$tmp/host.key" -out "$tmp/host.csr" 2>/dev/null
  printf 'subjectAltName=IP:10.0.2.2\nextendedKeyUsage=serverAuth\n' >"$tmp/host.ext"
  openssl x509 -req -in "$tmp/host.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" -CAcreateserial \
    -days 2 -extfile "$tmp/host.ext" -out "$tmp/host.pem" 2>/dev/null
  local broker_addr=${TEST_AMQP_URL#*@}
  broker_addr=${broker_addr%%/*}
  amqps_port=$(free_port)
  vm_tls_front "$amqps_port" "$broker_addr"
}
# vm_tls_front PORT UPSTREAM: socat terminating TLS on 127.0.0.1:PORT (10.0.2.2:PORT in the VM).
vm_tls_front() {
  socat "OPENSSL-LISTEN:$1,bind=127.0.0.1,reuseaddr,fork,cert=$tmp/host.pem,key=$tmp/host.key,verify=0" \
    "TCP:$2" 2>>"$tmp/socat.log" &
  pids+=($!)
}

# vm_relay NAME: the relay on the host, with its own database (kitchen_NAME), enrolling boxes:
# the management API as the host's administrator ([broker_admin], docs/relay.md); a box's broker
# login points at the TLS port. No [enrol] box_database_url: the box gets no database login (the
# host's PostgreSQL has no TLS, which a box requires off its own machine), so the box does not
# sync. Sets $bin (the host's debug binaries), $RELAY_LISTEN, $https_port.
vm_relay() {
  local database=kitchen_$1
  cargo build --quiet -p cloud-relay --bin cloud-relay --example otter_send >&2
  bin=${CARGO_TARGET_DIR:-target}/debug
  local relay_port
  relay_port=$(free_port)
  export DATABASE_URL="${TEST_DATABASE_URL%/*}/$database" AMQP_URL=$TEST_AMQP_URL
  export OTTER_WEBHOOK_SECRET=$VM_NAME-secret RELAY_LISTEN=127.0.0.1:$relay_port
  local admin=${TEST_RABBITMQ_ADMIN_URL#http://}
  local admin_login=${admin%%@*}
  export RABBITMQ_ADMIN_URL="http://${admin#*@}" RABBITMQ_ADMIN_USERNAME=${admin_login%%:*}
  export RABBITMQ_ADMIN_PASSWORD=${admin_login#*:} RABBITMQ_BOX_URL=amqps://10.0.2.2:$amqps_port/%2f
  psql "$TEST_DATABASE_URL" -qc "DROP DATABASE IF EXISTS $database WITH (FORCE)" -c "CREATE DATABASE $database" >&2
  export RELAY_ADMIN_LISTEN=127.0.0.1:$(free_port)
  "$bin/cloud-relay" >"$logs/relay.log" 2>&1 &
  pids+=($!)
  wait_for 60 "relay /readyz (log: $logs/relay.log)" command curl -sf "http://$RELAY_ADMIN_LISTEN/readyz"
  https_port=$(free_port)
  vm_tls_front "$https_port" "127.0.0.1:$relay_port"
}

# vm_kitchen ID ROLE: head office provisions the kitchen (docs/relay.md): its database role, its
# queue bound to its store, and a one-time enrolment token for its card ($enrol_token).
vm_kitchen() {
  kitchen_id=$1
  "$bin/cloud-relay" kitchen remove --kitchen "$kitchen_id" --delete-queue >/dev/null
  "$bin/cloud-relay" kitchen add --kitchen "$kitchen_id" --role "$2" >&2
  "$bin/cloud-relay" reference import --kitchen "$kitchen_id" edge-agent/reference.example.toml >&2
  enrol_token=$("$bin/cloud-relay" kitchen enrol-token --kitchen "$kitchen_id" --valid-hours 1 |
    sed -n 's/^enrol_token = "\(.*\)"$/\1/p')
  [ -n "$enrol_token" ] || fail "kitchen enrol-token printed no token"
}

# vm_disk: a sparse copy of the image, 1 GiB larger (a bigger SD card): $disk, and $boot_part,
# its FAT boot partition as mtools names it.
vm_disk() {
  disk=$tmp/disk.img
  cp --sparse=always "$image" "$disk"
  truncate -s +1G "$disk"
  boot_part="$disk@@$(( 4 << 20 ))"
}

# vm_kitchen_toml FILE: a good kitchen.toml holding no secret but the one-time enrolment token:
# the kitchen's store, a pairing code for the first manager device ($pairing_code), the CA.
vm_kitchen_toml() {
  pairing_code=$(echo "$VM_NAME" | tr a-z A-Z)-$RANDOM$RANDOM
  cat >"$1" <<TOML
kitchen_id = "$kitchen_id"
enrol_url = "https://10.0.2.2:$https_port/enrol"
enrol_token = "$enrol_token"
store_ids = ["kitchen-bk-01"]
pairing_code = "$pairing_code"
TOML
  printf "ca_pem = '''\n%s\n'''\n" "$(cat "$tmp/ca.pem")" >>"$1"
}

# Inside the VM the box's address is 10.0.2.15, not the 127.0.0.1 this host forwards from: the
# requests name the box as `localhost`, a host name it always answers to. vm_pair adds the
# paired device's token.
curl() { command curl -H "Host: localhost" ${device_token:+-H "Authorization: Bearer $device_token"} "$@"; }
agent_port=$(free_port)
agent=http://127.0.0.1:$agent_port
monitor_port=$(free_port)
qemu=

# vm_boot CONSOLE: boots $disk in the background ($qemu), the serial console (with the journal
# forwarded to it) written to CONSOLE. The disk is raw with QEMU's default cache (writeback): a
# guest's flush reaches the host file before it completes, as a card that honours flushes.
vm_boot() {
  local console=$1
  qemu-system-aarch64 -M virt -cpu cortex-a72 -smp 2 -m 1024 \
    -kernel "$kernel" -initrd "$initrd" \
    -append "root=LABEL=RASPIROOT ro console=ttyAMA0 systemd.journald.forward_to_console=1" \
    -drive "file=$disk,format=raw,if=virtio" \
    -netdev "user,id=net0,hostfwd=tcp:127.0.0.1:$agent_port-:8080" -device virtio-net-pci,netdev=net0 \
    -display none -monitor "tcp:127.0.0.1:$monitor_port,server,nowait" -serial "file:$console" &
  qemu=$!
  pids+=("$qemu")
}

# vm_power_off CONSOLE: the power button (ACPI): systemd shuts down cleanly, the agent gets
# SIGTERM. Pulled plug after 120 s.
vm_power_off() {
  local console=$1 started=$SECONDS
  (exec 3<>"/dev/tcp/127.0.0.1/$monitor_port" && echo system_powerdown >&3 && sleep 1) 2>/dev/null || true
  while kill -0 "$qemu" 2>/dev/null; do
    if [ $(( SECONDS - started )) -gt 120 ]; then log "no clean shutdown within 120 s: power cut"; kill "$qemu"; break; fi
    sleep 1
  done
  wait "$qemu" 2>/dev/null || true
  grep -q 'Stopped edge-agent.service' "$console" || fail "the agent was not stopped cleanly at shutdown"
  log "clean shutdown in $(( SECONDS - started )) s"
}

# vm_pair: pairs the first manager device with kitchen.toml's one-time code; later requests
# carry its token.
vm_pair() {
  local paired
  paired=$(curl -sf -X POST "$agent/api/pair" -H 'content-type: application/json' \
    -d "{\"code\": \"$pairing_code\", \"name\": \"$VM_NAME\"}") || fail "cannot pair with the pairing code"
  device_token=$(echo "$paired" | sed -n 's/.*"token":"\([^"]*\)".*/\1/p')
  [ -n "$device_token" ] || fail "pairing answered no token: $paired"
}

# vm_unit_failed CONSOLE: whether the console shows the agent's unit failing.
vm_unit_failed() {
  grep -E 'edge-agent.service: (Watchdog timeout|Failed|Main process exited)' "$1"
}
