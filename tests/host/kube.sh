#!/usr/bin/env bash
# The Kubernetes test: runs packaging/kubernetes/ for real with `podman kube play` (the
# Deployment: an init container, nginx and the kyma-certd sidecar sharing one process
# namespace, locked down as the manifest says; the claim; the ConfigMaps' and the
# Secret's contents) against the connector simulator on the host's loopback. Checks that the init container enrolled from the
# Secret and logged JSON as the ConfigMap asks, that the sidecar renews the short-lived
# certificates and sends nginx a SIGHUP (its worker process is replaced), that /metrics
# answers, and that a ConfigMap update (the kubelet's `..data` symlink swap) is applied
# without a restart.
#
# What the test changes in its copy of the manifests, and why:
# - the images: the sidecar image built here, and a local nginx image made from this
#   machine's nginx (no registry is reachable);
# - the values marked EDIT (the connector URL, nginx's upstream: the simulator), the
#   trust for the simulator's server certificate, and the ports: the pod shares the
#   host's network to reach the simulator on 127.0.0.1, so it takes free ports (and
#   podman maps no container ports on the host's network);
# - the configuration volume: a host folder laid out the way the kubelet lays out a
#   ConfigMap volume, so that the test can update it the way the kubelet does;
# - nginx's configuration, mounted as one file: podman 4.3 ignores `subPath`, so the
#   ConfigMap's nginx.conf is a host file;
# - the Secret's volume: a host folder laid out the same way, holding the Secret's
#   token (podman 4.3 does not find a Secret by name for a volume, and crashes when
#   the volume is not optional);
# - an annotation for podman 4.3, whose init containers of the default type race
#   their own removal;
# - the claim: the test creates its volume, owned by the pod's user as fsGroup would
#   make it (podman would create it owned by root).
#
# Needs root (or sudo), podman, runc, catatonit, nginx, musl-tools, curl, python3-yaml.
# Usage: tests/host/kube.sh [IMAGE]   (default: build it with packaging/container/build.sh)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

need podman runc catatonit nginx curl python3 cargo
cd "$ROOT"
run_started=$SECONDS
podman_cmd="podman"
[ "$(id -u)" -eq 0 ] || podman_cmd="sudo podman"

if [ $# -gt 1 ]; then
  echo "usage: tests/host/kube.sh [IMAGE]" >&2
  exit 2
fi
image=${1:-$(PODMAN=$podman_cmd packaging/container/build.sh | tail -n 1)}
cargo build --release --locked --quiet -p kyma-connector-sim

mkdir -p "$CACHE"
work=$(mktemp -d "$CACHE/kube-run.XXXXXX")
# The pod's processes may not raise their limits here: podman's defaults would try to.
cat >"$work/containers.conf" <<'EOF'
[containers]
default_ulimits = []
EOF
export CONTAINERS_CONF="$work/containers.conf"
# crun fails on a hybrid cgroup layout; runc with cgroupfs runs everywhere.
podman=(podman --runtime runc --cgroup-manager cgroupfs)
pod=orders-pod-0
volume=orders-certificates
nginx_image=localhost/kyma-certd-test-nginx:test

cleanup() {
  stop_sim
  if [ "${KEEP:-0}" = 1 ]; then
    log "kept $work and the pod $pod (KEEP=1)"
    return
  fi
  if [ -f "$work/pod.yaml" ]; then
    as_root "${podman[@]}" kube down "$work/pod.yaml" >/dev/null 2>&1 || true
  fi
  as_root "${podman[@]}" pod rm -f "$pod" >/dev/null 2>&1 || true
  as_root "${podman[@]}" volume rm -f "$volume" >/dev/null 2>&1 || true
  as_root rm -rf "$work"
}
trap cleanup EXIT
# A pod left by an interrupted run would keep the names taken.
as_root "${podman[@]}" pod rm -f "$pod" >/dev/null 2>&1 || true
as_root "${podman[@]}" volume rm -f "$volume" >/dev/null 2>&1 || true

log "== an nginx image from this machine's nginx (uid 101, like nginx-unprivileged)"
rootfs="$work/nginx/rootfs"
install -D -m 0755 /usr/sbin/nginx "$rootfs/usr/sbin/nginx"
for lib in $(ldd /usr/sbin/nginx | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'); do
  install -D -m 0755 "$lib" "$rootfs$lib"
done
install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
install -d "$rootfs/var/log/nginx" "$rootfs/var/lib/nginx"
# World-writable like a cluster's emptyDir: podman gives an emptyDir volume the owner
# and mode of the image's folder at the first mount.
install -d -m 1777 "$rootfs/tmp" "$rootfs/run/nginx"
# nginx opens its built-in error log before reading the configuration.
ln -s /dev/stderr "$rootfs/var/log/nginx/error.log"
printf 'root:x:0:0::/:/nonexistent\nnginx:x:101:101::/nonexistent:/nonexistent\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\nnginx:x:101:\n' >"$rootfs/etc/group"
cat >"$work/nginx/Containerfile" <<'EOF'
FROM scratch
COPY rootfs/ /
USER 101:101
ENTRYPOINT ["/usr/sbin/nginx", "-g", "daemon off;"]
EOF
as_root "${podman[@]}" build --quiet -t "$nginx_image" "$work/nginx" >/dev/null
pass "built $nginx_image"

start_sim "$work/sim" --validity 30s
mtls_port=$(curl -sSf "$SIM_ADMIN" | python3 -c 'import json, sys, urllib.parse as u; print(u.urlsplit(json.load(sys.stdin)["compass_mtls_url"]).port)')
metrics_port=$(free_port)
nginx_port=$(free_port)

# The configuration volume, as the kubelet lays out a ConfigMap: the keys are symlinks
# through `..data`, which points at a timestamped folder; an update writes a new folder
# and renames a new `..data` over the old one.
config_dir="$work/config"
secret_dir="$work/secret"
mkdir -p "$config_dir"
configmap_version=0
# configmap_update TOML: publishes a new version of config.toml (and the connector CA).
configmap_update() {
  local old="..v$configmap_version"
  configmap_version=$((configmap_version + 1))
  local new="..v$configmap_version"
  mkdir "$config_dir/$new"
  printf '%s' "$1" >"$config_dir/$new/config.toml"
  cp "$work/sim/server-ca.pem" "$config_dir/$new/connector-ca.pem"
  chmod 0755 "$config_dir/$new"
  chmod 0644 "$config_dir/$new/"*
  ln -s "$new" "$config_dir/..data_tmp"
  mv -T "$config_dir/..data_tmp" "$config_dir/..data"
  rm -rf "${config_dir:?}/$old"
  for key in config.toml connector-ca.pem; do
    [ -L "$config_dir/$key" ] || ln -s "..data/$key" "$config_dir/$key"
  done
}

# The manifests, with the substitutions listed at the top, as one file for kube play;
# the configuration the ConfigMap carries (so adapted) goes to the kubelet-like folder.
token=$(mint_token)
python3 - "$work" "$image" "$nginx_image" "$SIM_TOKEN_URL" "$mtls_port" "$metrics_port" "$nginx_port" "$config_dir" "$token" "$secret_dir" <<'EOF'
import sys, pathlib, yaml

work, image, nginx_image, token_url, mtls_port, metrics_port, nginx_port, config_dir, token, secret_dir = sys.argv[1:]
base = pathlib.Path("packaging/kubernetes")
docs = {}
for name in ("configmap.yaml", "secret.yaml", "pvc.yaml", "deployment.yaml"):
    for doc in yaml.safe_load_all((base / name).read_text()):
        docs[(doc["kind"], doc["metadata"]["name"])] = doc

def replace(text, old, new):
    if old not in text:
        sys.exit(f"kube.sh: {old!r} is no longer in the manifests; update the test")
    return text.replace(old, new)

config = docs[("ConfigMap", "orders-kyma-certd")]["data"]["config.toml"]
config = replace(config, "https://compass-gateway.example.com/connector/graphql", token_url)
config = replace(config, '"0.0.0.0:9467"', f'"127.0.0.1:{metrics_port}"')
config = replace(config, 'connector_url = ', 'server_ca_file = "/etc/kyma-certd/connector-ca.pem"\nconnector_url = ')
pathlib.Path(work, "config.toml").write_text(config)

nginx = docs[("ConfigMap", "orders-nginx")]
conf = nginx["data"]["nginx.conf"]
conf = replace(conf, "https://gateway.kyma.example.com", f"https://127.0.0.1:{mtls_port}")
conf = replace(conf, "listen 8080;", f"listen 127.0.0.1:{nginx_port};")
pathlib.Path(work, "nginx.conf").write_text(conf)

secret = docs[("Secret", "orders-enrollment-token")]
secret["stringData"]["token"] = replace(secret["stringData"]["token"], "EDIT-one-time-token", token)
pathlib.Path(work, "token").write_text(secret["stringData"]["token"])

deployment = docs[("Deployment", "orders")]
template = deployment["spec"]["template"]
for meta in (deployment["metadata"], template["metadata"]):
    meta.setdefault("annotations", {})["io.podman.annotations.init.container.type"] = "always"
spec = template["spec"]
spec["hostNetwork"] = True
# podman applies the pod's restart policy to init containers too: under "Always" it runs
# `enroll --if-needed` again each time it ends, and `kube play` may wait on that loop
# until the short-lived test certificate expires. Kubernetes never restarts an init
# container that succeeded; "OnFailure" makes podman do the same.
spec["restartPolicy"] = "OnFailure"
for container in spec["initContainers"] + spec["containers"]:
    if container["image"].startswith("kyma-certd:"):
        container["image"] = image
    elif "nginx" in container["image"]:
        container["image"] = nginx_image
    # On the host's network podman maps no ports (it refuses to): the probes name
    # the port by number instead.
    ports = {p["name"]: {9467: int(metrics_port), 8080: int(nginx_port)}[p["containerPort"]]
             for p in container.pop("ports", [])}
    for probe in ("readinessProbe", "livenessProbe"):
        if probe in container:
            get = container[probe]["httpGet"]
            get["port"] = ports.get(get["port"], get["port"])
for volume in spec["volumes"]:
    if volume["name"] == "kyma-certd-config":
        volume.pop("configMap")
        volume["hostPath"] = {"path": config_dir, "type": "Directory"}
    if volume["name"] == "nginx-config":
        volume.pop("configMap")
        volume["hostPath"] = {"path": f"{work}/nginx.conf", "type": "File"}
    if volume["name"] == "enrollment-token":
        if volume["secret"]["secretName"] != "orders-enrollment-token":
            sys.exit("kube.sh: the token volume no longer names the Secret; update the test")
        volume.pop("secret")
        volume["hostPath"] = {"path": secret_dir, "type": "Directory"}

# The claim is the volume the test creates (kube play would make one owned by root).
for container in spec["containers"]:
    for mount in container.get("volumeMounts", []):
        if mount["name"] == "nginx-config":
            if mount.pop("subPath") != "nginx.conf":
                sys.exit("kube.sh: nginx's configuration mount changed; update the test")
order = [("Deployment", "orders")]
pathlib.Path(work, "pod.yaml").write_text(yaml.safe_dump_all([docs[k] for k in order], sort_keys=False))
EOF
configmap_update "$(cat "$work/config.toml")"
# The Secret's volume, laid out the same way: token -> ..data/token, mode 0440
# (defaultMode), group 101 (fsGroup).
mkdir -p "$secret_dir/..v1"
install -m 0440 -g 101 "$work/token" "$secret_dir/..v1/token"
ln -s ..v1 "$secret_dir/..data"
ln -s ..data/token "$secret_dir/token"
rm -f "$work/token"

# The claim's volume, owned by the pod's user (fsGroup 101 on a real cluster). Podman
# gives a new volume, at its first mount, the owner and mode of the image's folder
# (the image's user, 65532): a throw-away first mount does that, then the test sets
# what a cluster's fsGroup would.
as_root "${podman[@]}" volume create "$volume" >/dev/null
as_root "${podman[@]}" run --rm --network none --user 101:101 --entrypoint /kyma-certd \
  -v "$volume:/var/lib/kyma-certd" "$image" --version >/dev/null 2>&1
state=$(as_root "${podman[@]}" volume inspect --format '{{.Mountpoint}}' "$volume")
as_root chown 101:101 "$state"
as_root chmod 0770 "$state"

log "== podman kube play packaging/kubernetes/"
# The containers are named <pod>-<container>, the pod after the Deployment.
logs() { as_root "${podman[@]}" logs "$pod-$1" 2>&1; }
as_root "${podman[@]}" kube play "$work/pod.yaml" >"$work/play.log" 2>&1 || {
  cat "$work/play.log" >&2
  as_root "${podman[@]}" ps -a --format '{{.Names}} {{.Status}}' >&2
  for c in $(as_root "${podman[@]}" ps -a --format '{{.Names}}'); do
    log "--- logs of $c"
    as_root "${podman[@]}" logs "$c" 2>&1 | tail -n 20 >&2 || true
  done
  die "podman kube play failed"
}
on_failure() {
  for c in kyma-certd-enroll kyma-certd nginx; do
    log "--- logs of $c"
    logs "$c" | tail -n 30 >&2 || true
  done
}
fingerprint() { as_root sha256sum "$state/orders/cert.pem" 2>/dev/null | cut -d' ' -f1; }
enrolled() { [ -n "$(fingerprint)" ]; }
wait_until 60 "the init container's certificate" enrolled || { on_failure; die "no certificate on the volume"; }
first=$(fingerprint)
pass "the init container enrolled from the Secret (cert.pem sha256 ${first:0:16})"

enroll_log=$(logs kyma-certd-enroll)
python3 - "$enroll_log" <<'EOF' || { on_failure; die "the init container did not log JSON"; }
import json, sys
lines = [l for l in sys.argv[1].splitlines() if l.strip()]
assert lines, "no log lines"
parsed = [json.loads(l) for l in lines]
enrolled = [p for p in parsed if p.get("message", "").startswith("enrolled orders:") and p.get("name") == "orders"]
# One enrollment; a later run of the init container (a restart) must skip.
assert len(enrolled) == 1, lines
skipped = [p for p in parsed if "the token was not used" in p.get("message", "")]
assert len(skipped) == len([p for p in parsed if p.get("target") == "kyma_certd::outcome"]) - 1, lines
EOF
pass "the init container logged JSON lines, as the ConfigMap asks ($(wc -l <<<"$enroll_log") lines)"

metrics() { curl -sf "http://127.0.0.1:$metrics_port/metrics"; }
valid() { metrics | grep -q '^kyma_certd_certificate_state{name="orders",state="valid"} 1$'; }
wait_until 30 "/metrics with a valid certificate" valid || { on_failure; die "/metrics did not answer with a valid certificate"; }
pass "/metrics answers: orders is valid"

workers() { as_root "${podman[@]}" top "$pod-nginx" pid args 2>/dev/null | awk '/worker process/ { print $1 }' | sort | tr '\n' ' '; }
nginx_up() { [ -n "$(workers)" ]; }
wait_until 30 "nginx's worker" nginx_up || { on_failure; die "nginx does not run"; }
workers_before=$(workers)
renewed() { [ "$(fingerprint)" != "$first" ]; }
wait_until 60 "a renewal by the sidecar" renewed || { on_failure; die "no renewal within 60 s"; }
pass "the sidecar renewed (cert.pem sha256 $(fingerprint | cut -c1-16))"
hooked() { logs kyma-certd | grep '"hook succeeded"' | grep -q '"hook":"signal"'; }
wait_until 30 "the signal hook" hooked || { on_failure; die "the signal hook did not succeed"; }
reloaded() { local now; now=$(workers); [ -n "$now" ] && [ "$now" != "$workers_before" ]; }
wait_until 30 "a new nginx worker" reloaded || { on_failure; die "nginx was not reloaded (workers still $workers_before)"; }
pass "nginx was reloaded by SIGHUP across the shared process namespace (worker ${workers_before}-> $(workers))"

log "== a ConfigMap update, the kubelet's way"
reloads() { metrics | awk '/^kyma_certd_config_reloads_total\{result="success"\}/ { print $2 }'; }
[ "$(reloads)" = 0 ] || die "config reloads before the update: $(reloads)"
configmap_update "$(sed 's/^key_mode = "0600".*/&\nrenew_at = "60%"/' "$work/config.toml")"
restarted() { logs kyma-certd | grep -q 'certificate changed in the configuration; restarting it'; }
wait_until 30 "the sidecar to apply the new configuration" restarted || { on_failure; die "the ConfigMap update was not applied"; }
[ "$(reloads)" = 1 ] || die "config reloads after the update: $(reloads), want 1"
restarts=$(as_root "${podman[@]}" inspect --format '{{.RestartCount}}' "$pod-kyma-certd")
[ "$restarts" = 0 ] || die "the sidecar restarted $restarts times"
pass "the ConfigMap update was applied without a restart (config_reloads_total{result=\"success\"} 1)"

log "PASS: Kubernetes manifests under podman kube play, $((SECONDS - run_started))s in all"
