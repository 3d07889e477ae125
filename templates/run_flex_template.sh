#!/usr/bin/env bash
# Launches the Flex Template on one window range: by default the previous UTC day.
#
#   PROJECT=acme-sec REGION=europe-west1 TEMPLATE=gs://acme-dataflow/templates/rare_runcommand-abc123.json \
#   EXPORTS=gs://acme-sentinel-exports OUTPUT=gs://acme-detections/rare_runcommand \
#       bash templates/run_flex_template.sh [START [END]]
#
# START/END: ISO 8601 dates or instants (UTC without a zone), e.g. 2024-03-01 2024-03-02; END defaults to
# START + 1 day. Input patterns: $EXPORTS/<Table>/** unless AZURE_ACTIVITY, DEVICE_FILE_EVENTS,
# DEVICE_EVENTS are set (point them at the date partitions of the range to read less).
# Optional: SEMANTICS (sentinel|strict), QUERY_PERIOD, QUERY_FREQUENCY, WINDOW_OFFSET, RULE,
# SERVICE_ACCOUNT, MAX_WORKERS, DRY_RUN=1 (print the command only).
set -euo pipefail

: "${PROJECT:?set PROJECT}"
: "${REGION:?set REGION}"
: "${TEMPLATE:?set TEMPLATE to the template spec printed by build_flex_template.sh}"
: "${OUTPUT:?set OUTPUT to the gs:// folder receiving one sub-folder per run}"

START=${1:-$(date -u -d 'yesterday' +%Y-%m-%d)}
END=${2:-$(date -u -d "${START%%T*} + 1 day" +%Y-%m-%d)}
AZURE_ACTIVITY=${AZURE_ACTIVITY:-${EXPORTS:?set EXPORTS or the three input patterns}/AzureActivity/**}
DEVICE_FILE_EVENTS=${DEVICE_FILE_EVENTS:-${EXPORTS}/DeviceFileEvents/**}
DEVICE_EVENTS=${DEVICE_EVENTS:-${EXPORTS}/DeviceEvents/**}
RUN_ID=$(echo "${START}-${END}" | tr -c 'a-zA-Z0-9\n' '-' | tr 'A-Z' 'a-z')
JOB_NAME=${JOB_NAME:-rare-runcommand-${RUN_ID}}

# gcloud's alternate delimiter syntax (^~^) so that values may contain commas.
PARAMS="^~^azure_activity=${AZURE_ACTIVITY}~device_file_events=${DEVICE_FILE_EVENTS}"
PARAMS+="~device_events=${DEVICE_EVENTS}~output_dir=${OUTPUT%/}/${RUN_ID}/"
PARAMS+="~start=${START}~end=${END}~semantics=${SEMANTICS:-sentinel}"
[[ -n "${QUERY_PERIOD:-}" ]] && PARAMS+="~query_period=${QUERY_PERIOD}"
[[ -n "${QUERY_FREQUENCY:-}" ]] && PARAMS+="~query_frequency=${QUERY_FREQUENCY}"
[[ -n "${WINDOW_OFFSET:-}" ]] && PARAMS+="~window_offset=${WINDOW_OFFSET}"
[[ -n "${RULE:-}" ]] && PARAMS+="~rule=${RULE}"

COMMAND=(gcloud dataflow flex-template run "$JOB_NAME"
    --project "$PROJECT" --region "$REGION"
    --template-file-gcs-location "$TEMPLATE"
    --parameters "$PARAMS")
[[ -n "${SERVICE_ACCOUNT:-}" ]] && COMMAND+=(--service-account-email "$SERVICE_ACCOUNT")
[[ -n "${MAX_WORKERS:-}" ]] && COMMAND+=(--max-workers "$MAX_WORKERS")

if [[ "${DRY_RUN:-0}" == 1 ]]; then
    printf '%q ' "${COMMAND[@]}"; echo
else
    "${COMMAND[@]}"
fi
