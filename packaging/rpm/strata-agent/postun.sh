# %postun of strata-agent ($1: 0 on erase, 1 on upgrade): an upgrade restarts a running agent,
# which adopts the running tasks. Erase keeps /var/lib/strata/agent (RPM has no purge).
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
if [ "$1" -ge 1 ]; then
    systemctl try-restart strata-agent.service >/dev/null 2>&1 || :
fi
exit 0
