#!/bin/sh
# Fails the health check on purpose (see Dockerfile).
if [ "$BROKEN_MODE" = "http500" ]; then
    echo "app-broken: starting, but every page will fail" >&2
    # With no index.html, busybox httpd answers `/` with cgi-bin/index.cgi, which says 500.
    httpd -f -v -p 80 -h /www &
    trap 'kill $!; exit 0' TERM INT
    wait
else
    echo "app-broken: fatal: required setting DATABASE_URL is not set; exiting" >&2
    exit 1
fi
