# %pre of strata-master: the `strata` system user the master runs as.
getent group strata >/dev/null || groupadd --system strata
getent passwd strata >/dev/null || \
    useradd --system --gid strata --home-dir /var/lib/strata --no-create-home \
        --shell /sbin/nologin --comment "Strata master" strata
exit 0
