#!/bin/sh
# /health when the image was built with HEALTH=fail or HEALTH=slow-start:N (see the Dockerfile): a real
# app's health endpoint that fails, or that needs a while after start, and says why on stderr (the logs).
mode="@HEALTH@"
answer() {
    printf 'Status: %s\r\nContent-Type: text/plain\r\n\r\n%s\n' "$1" "$2"
}
case "$mode" in
fail)
    echo "example-app: GET /health failed: the database is unreachable (built with HEALTH=fail)" >&2
    answer "500 Internal Server Error" "unhealthy: the database is unreachable"
    ;;
slow-start:*)
    wanted="${mode#slow-start:}"
    up=$(($(date +%s) - $(cat /tmp/started 2>/dev/null || date +%s)))
    if [ "$up" -lt "$wanted" ]; then
        echo "example-app: GET /health: still starting (${up}s of ${wanted}s)" >&2
        answer "503 Service Unavailable" "starting"
    else
        answer "200 OK" "ok"
    fi
    ;;
*) answer "200 OK" "ok" ;;
esac
