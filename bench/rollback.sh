#!/usr/bin/env bash
# The hand-written pipeline plus what teams add to it for a release that turns out broken: a step
# before the deploy that notes the running version, the deploy (bench/pipeline.sh), a check step
# (curl with retries for CHECK_SECONDS, as eb-deploy's check-timeout), and a rollback step run on
# failure (update-environment to the noted version, then the same waiter).
#
# Environment: as bench/pipeline.sh (PIPELINE is its path), plus CHECK_SECONDS and http_proxy (the
# local stack's CNAME proxy: an environment's CNAME resolves nowhere here).
set -euo pipefail

# - name: Note the running version (before the deploy)
PREVIOUS="$("$AWS" elasticbeanstalk describe-environments --application-name "$APP" \
    --environment-names "$ENV_NAME" --query 'Environments[0].VersionLabel' --output text)"

# - the deploy job's steps
deployed=1
bash "$PIPELINE" || deployed=0

# - name: Check the app answers
if ((deployed)); then
    CNAME="$("$AWS" elasticbeanstalk describe-environments --application-name "$APP" \
        --environment-names "$ENV_NAME" --query 'Environments[0].CNAME' --output text)"
    if curl -fsSL -o /dev/null --max-time 5 --retry 100 --retry-delay 1 --retry-all-errors \
        --retry-max-time "$CHECK_SECONDS" "http://$CNAME/health"; then
        exit 0
    fi
fi

# - name: Roll back (if: failure())
echo "deploy or check failed; rolling back to $PREVIOUS"
"$AWS" elasticbeanstalk update-environment --application-name "$APP" --environment-name "$ENV_NAME" \
    --version-label "$PREVIOUS"
"$AWS" elasticbeanstalk wait environment-updated --application-name "$APP" --environment-name "$ENV_NAME"
echo "rolled back to $PREVIOUS"
exit 1
