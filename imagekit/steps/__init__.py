"""What every command that brings up a server shares, below all of them: a temporary key, the one create step and
the one boot step (``server``), SSH and cloud-init (``ready``), over the state ``job.HostJob``; and what
provisioning, the pool and the fleet commands share: the operator's key (``operator``), the profile's firewall
(``firewall``), the profile's playbooks on a stock host (``install``). Each step is a pipeline step
(``imagekit.pipeline``)."""
