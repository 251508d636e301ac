#!/usr/bin/env bash
# The hand-written pipeline eb-deploy replaces, step for step as in the seed workflow
# (shared reference: seed-pipeline.md), run from a checkout of the app:
#   amazon-ecr-login       -> aws ecr get-login-password | docker login --password-stdin
#   build, tag, push       -> docker build (classic builder) + docker tag + docker push
#   update Dockerrun       -> a JSON edit of .housekeeping/elasticbeanstalk/Dockerrun.aws.json (python)
#   eb-env                 -> zip, aws s3 cp, create-application-version, update-environment,
#                             aws elasticbeanstalk wait environment-updated
# The only additions are timestamps (bash's $EPOCHREALTIME, no extra process) written to $MARKS so
# the benchmark can tell build+push and the waiter apart, APP_VERSION as a build argument so
# every run builds something new, and HEALTH (when set) for the failed-release benchmark's broken app.
#
# Environment (set by bench/bench.py): AWS_* of the local stack (endpoints included), AWS (the CLI),
# PYTHON, REGISTRY (what amazon-ecr-login outputs), ECR_REPOSITORY, REF_NAME (the tag), SHA (the
# version label), APP_VERSION, APP, ENV_NAME, AWS_ACCOUNT_ID, AWS_REGION, MARKS, DOCKER_CONFIG.
set -euo pipefail

mark() { printf '%s %s\n' "$1" "$EPOCHREALTIME" >>"$MARKS"; }

mark start

# - name: Login to AWS ECR (aws-actions/amazon-ecr-login)
"$AWS" ecr get-login-password | docker login --username AWS --password-stdin "$REGISTRY" >/dev/null
mark login

# - name: Build, tag, and push image to AWS ECR
export DOCKER_BUILDKIT=0
IMAGE_ADDR="$REGISTRY/$ECR_REPOSITORY:$REF_NAME"
echo "image=$IMAGE_ADDR"
mark build_start
docker build -t "django-docker:$REF_NAME" --build-arg "APP_VERSION=$APP_VERSION" \
    ${HEALTH:+--build-arg "HEALTH=$HEALTH"} .
docker tag "django-docker:$REF_NAME" "$IMAGE_ADDR"
docker push "$IMAGE_ADDR"
mark build_end

# - name: Update Dockerrun (actions/github-script: read, set Image.Name, write)
IMAGE_ADDR="$IMAGE_ADDR" "$PYTHON" - <<'EOF'
import json, os
fpath = '.housekeeping/elasticbeanstalk/Dockerrun.aws.json'
with open(fpath) as f:
    apps = json.load(f)
apps["Image"]["Name"] = os.environ["IMAGE_ADDR"]
with open(fpath, "w") as f:
    f.write(json.dumps(apps))
EOF
mark dockerrun

# - name: AWS Elastic Beanstalk environment
BUCKET="elasticbeanstalk-$AWS_REGION-$AWS_ACCOUNT_ID"
cd .housekeeping/elasticbeanstalk
zip -r "../$REF_NAME.zip" Dockerrun.aws.json
"$AWS" s3 cp "../$REF_NAME.zip" "s3://$BUCKET/$APP/"
"$AWS" elasticbeanstalk create-application-version --application-name "$APP" --version-label "$SHA" \
    --description "$REF_NAME" --source-bundle "S3Bucket=$BUCKET,S3Key=$APP/$REF_NAME.zip"
mark update_start
"$AWS" elasticbeanstalk update-environment --application-name "$APP" --environment-name "$ENV_NAME" \
    --version-label "$SHA"
mark wait_start
"$AWS" elasticbeanstalk wait environment-updated --application-name "$APP" --environment-name "$ENV_NAME"
mark end
