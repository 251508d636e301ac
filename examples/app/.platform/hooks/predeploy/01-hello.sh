#!/bin/bash
# Elastic Beanstalk runs predeploy hooks on the instance before the new version starts.
echo "predeploy hook: hello from the example app"
