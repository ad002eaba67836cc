# %post of strata-agent ($1: 1 on installation, 2 on upgrade): the work dir; the service is
# enabled on installation but not started.
install -d -m 0755 -o root -g root /var/lib/strata
install -d -m 0755 -o root -g root /var/lib/strata/agent
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
if [ "$1" -eq 1 ]; then
    systemctl enable strata-agent.service >/dev/null 2>&1 || :
fi
exit 0
