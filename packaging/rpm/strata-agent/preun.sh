# %preun of strata-agent ($1: 0 on erase, 1 on upgrade): erase stops and disables the service.
# Tasks keep running (KillMode=process).
# It also detaches the network isolators' BPF programs and removes their pins.
if [ "$1" -eq 0 ]; then
    systemctl --no-reload disable --now strata-agent.service >/dev/null 2>&1 || :
    if [ -x /usr/bin/strata-agent ]; then
        /usr/bin/strata-agent cleanup-bpf >/dev/null 2>&1 || :
    fi
fi
exit 0
