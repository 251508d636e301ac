#!/bin/sh
# Every page fails, and says why on stderr (the container's log) as a real app would.
echo "app-broken: $REQUEST_METHOD $REQUEST_URI failed: required setting DATABASE_URL is not set" >&2
printf 'Status: 500 Internal Server Error\r\nContent-Type: text/plain\r\n\r\n'
echo "app-broken: internal error: required setting DATABASE_URL is not set"
