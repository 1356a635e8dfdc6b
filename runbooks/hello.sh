#!/bin/sh
# Parameters arrive as arguments in catalog order, and as CHATOPS_PARAM_<NAME>.
echo "Hello, $1! (job $CHATOPS_JOB_ID)"
