#!/bin/sh
# imagekit: install the agent staged by cloud-init and start it. Run by cloud-init on
# snapshot hosts and over SSH after the playbooks on fallback hosts: same end state. `update`
# stages only a new bundle.tar.gz and runs it again: the code is replaced, the rest is kept.
set -eu
stage=@STAGE@
[ -d "$stage" ] || { echo "imagekit-configure-agent: nothing staged in $stage (already configured?)"; exit 0; }
id -u openclaw >/dev/null 2>&1 || { echo "imagekit-configure-agent: user openclaw missing: is this an agent image?" >&2; exit 1; }
# The bundle replaces what was there; only the agent user may read it.
find /opt/openclaw/agent -mindepth 1 -delete
tar -xzf "$stage/bundle.tar.gz" -C /opt/openclaw/agent --no-same-owner --no-same-permissions
chown -R openclaw:openclaw /opt/openclaw/agent
chmod -R u=rwX,g=rX,o= /opt/openclaw/agent
if [ -f "$stage/agent.env" ]; then
    install -o openclaw -g openclaw -m 0600 "$stage/agent.env" /opt/openclaw/config/agent.env
fi
if [ -f "$stage/provisioned.json" ]; then
    # Provisioning metadata: who, how, from which image, and when this host was configured.
    sed "s/@NOW@/$(date -u +%Y-%m-%dT%H:%M:%SZ)/" "$stage/provisioned.json" > "$stage/provisioned_at"
    install -o root -g openclaw -m 0640 "$stage/provisioned_at" /opt/openclaw/config/provisioned_at
fi
rm -rf "$stage"
systemctl enable openclaw-agent
systemctl reset-failed openclaw-agent  # a restart keeps counting earlier crashes (NRestarts); this run starts anew
systemctl restart openclaw-agent
echo "imagekit-configure-agent: openclaw-agent started"
