#!/bin/sh
# Fails the health check on purpose (see Dockerfile), and prints why, so the environment's logs
# (RequestEnvironmentInfo, `eb logs`) explain the failed deploy.
if [ "$BROKEN_MODE" = "http500" ]; then
    echo "app-broken: starting in BROKEN_MODE=http500: every page will fail (DATABASE_URL is not set)" >&2
    # With no index.html, busybox httpd answers `/` with cgi-bin/index.cgi, which says 500.
    httpd -f -v -p 80 -h /www &
    trap 'kill $!; exit 0' TERM INT
    wait
else
    echo "app-broken: starting in BROKEN_MODE=exit" >&2
    echo "app-broken: fatal: required setting DATABASE_URL is not set; exiting" >&2
    exit 1
fi
