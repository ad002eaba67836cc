# %postun of strata-master ($1: 0 on erase, 1 on upgrade): an upgrade restarts a running
# service. Erase keeps /var/lib/strata/master and the `strata` user (RPM has no purge; remove
# them by hand).
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
if [ "$1" -ge 1 ]; then
    systemctl try-restart strata-master.service >/dev/null 2>&1 || :
fi
exit 0
