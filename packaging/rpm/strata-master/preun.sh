# %preun of strata-master ($1: 0 on erase, 1 on upgrade): erase stops and disables the service.
if [ "$1" -eq 0 ]; then
    systemctl --no-reload disable --now strata-master.service >/dev/null 2>&1 || :
fi
exit 0
