#!/bin/sh
# The image's entrypoint: run the command as the trainq user (uid 1000).
#
# Started as root (the default), it first makes the folders the service writes into usable
# by trainq: Docker creates a bind-mounted host folder that does not exist yet (./data) as
# root, where uid 1000 could not write. Only such a folder, empty and owned by root, is
# handed over; a folder holding data stays as it is, with a warning when trainq cannot
# write it. Started as another user (docker run --user, compose's user:), it only runs
# the command.
set -eu

if [ "$(id -u)" != 0 ]; then
    exec "$@"
fi
for folder in /data /var/lib/trainq; do
    if [ -d "$folder" ] && ! setpriv --reuid=trainq --regid=trainq --init-groups test -w "$folder"; then
        if [ "$(stat -c %u "$folder")" = 0 ] && [ -z "$(ls -A "$folder")" ]; then
            chown trainq:trainq "$folder"
        else
            echo "trainq: $folder is not writable by uid 1000 (trainq); jobs that write there will fail:" \
                 "chown -R 1000:1000 the host folder mounted there" >&2
        fi
    fi
done
exec setpriv --reuid=trainq --regid=trainq --init-groups "$@"
