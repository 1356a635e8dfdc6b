#!/bin/sh
# Usage: disk-check.sh THRESHOLD — exits 1 when the root file system is fuller than THRESHOLD %.
threshold=$1
used=$(df -P / | awk 'NR==2 { sub("%", "", $5); print $5 }')
echo "root file system: ${used}% used (threshold ${threshold}%)"
if [ "$used" -gt "$threshold" ]; then
  echo "disk usage ${used}% is over ${threshold}%" >&2
  exit 1
fi
