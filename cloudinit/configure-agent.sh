#!/bin/sh
# imagekit: install the agent staged by cloud-init and start it. Run by cloud-init on
# snapshot hosts and over SSH after the playbooks on fallback hosts: same end state. `update`
# stages only a new bundle.tar.gz and runs it again: the code is replaced, the rest is kept.
# The @NAMES@ are the profile's data (playbooks/profiles/<profile>.yml), filled in by imagekit.
set -eu
stage=@STAGE@
[ -d "$stage" ] || { echo "imagekit-configure-agent: nothing staged in $stage (already configured?)"; exit 0; }
[ -f "$stage/bundle.tar.gz" ] || [ -f "$stage/code-baked" ] || { echo "imagekit-configure-agent: no agent code staged in $stage: the agent is not started" >&2; exit 1; }
id -u @USER@ >/dev/null 2>&1 || { echo "imagekit-configure-agent: user @USER@ missing: is this the profile's image?" >&2; exit 1; }
# The bundle replaces what was there; only the service's user may read it. The agent owns its code directory and
# may change it while it runs (a link planted for root to write through): it is stopped before its code is
# touched, and the bundle is unpacked into a new directory that only root can write, then moved into place whole.
systemctl stop @SERVICE@
if [ -f "$stage/bundle.tar.gz" ]; then  # else code-baked: the snapshot's code stays
    new=$(mktemp -d @CODE_DIR@.new.XXXXXX)
    old=@CODE_DIR@.old.${new##*.}
    trap 'rm -rf "$new"' EXIT
    tar -xzf "$stage/bundle.tar.gz" -C "$new" --no-same-owner --no-same-permissions
    chmod -R u=rwX,g=rX,o= "$new"
    chown -R @USER@:@USER@ "$new"
    if [ -e @CODE_DIR@ ] || [ -L @CODE_DIR@ ]; then mv -T @CODE_DIR@ "$old"; fi
    mv -T "$new" @CODE_DIR@
    rm -rf "$old"
fi
if [ -f "$stage/agent.env" ]; then
    install -o @USER@ -g @USER@ -m 0600 "$stage/agent.env" @ENV_FILE@
fi
if [ -f "$stage/provisioned.json" ]; then
    # Provisioning metadata: who, how, from which image, and when this host was configured.
    sed "s/@NOW@/$(date -u +%Y-%m-%dT%H:%M:%SZ)/" "$stage/provisioned.json" > "$stage/provisioned_at"
    install -o root -g @USER@ -m 0640 "$stage/provisioned_at" @PROVISIONED_AT@
fi
rm -rf "$stage"
systemctl enable @SERVICE@
systemctl reset-failed @SERVICE@  # a restart keeps counting earlier crashes (NRestarts); this run starts anew
systemctl restart @SERVICE@
echo "imagekit-configure-agent: @SERVICE@ started"
