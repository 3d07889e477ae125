#!/usr/bin/env bash
# Builds the launcher image (templates/Dockerfile, context = repository root) with Cloud Build, pushes it
# to Artifact Registry, and writes the Flex Template spec (image + templates/metadata.json) to Cloud Storage.
#
#   PROJECT=acme-sec REGION=europe-west1 REPOSITORY=dataflow BUCKET=acme-dataflow \
#       bash templates/build_flex_template.sh
#
# Needs: gcloud (authenticated), Artifact Registry repository $REPOSITORY (docker format) in $REGION,
# bucket $BUCKET. Prints the template spec path that run_flex_template.sh takes as TEMPLATE.
set -euo pipefail
cd "$(dirname "$0")/.."

: "${PROJECT:?set PROJECT to the Google Cloud project}"
: "${REGION:?set REGION, e.g. europe-west1}"
: "${REPOSITORY:?set REPOSITORY to an Artifact Registry docker repository in REGION}"
: "${BUCKET:?set BUCKET to the bucket holding template specs (no gs:// prefix)}"
TAG=${TAG:-$(git rev-parse --short HEAD 2>/dev/null || date -u +%Y%m%d%H%M%S)}
IMAGE=${IMAGE:-${REGION}-docker.pkg.dev/${PROJECT}/${REPOSITORY}/rare-runcommand-launcher:${TAG}}
TEMPLATE=${TEMPLATE:-gs://${BUCKET}/templates/rare_runcommand-${TAG}.json}

# Cloud Build with the Dockerfile under templates/ and the repository root as context.
CONFIG=$(mktemp)
trap 'rm -f "$CONFIG"' EXIT
cat > "$CONFIG" <<YAML
steps:
- name: gcr.io/cloud-builders/docker
  args: ['build', '-f', 'templates/Dockerfile', '-t', '${IMAGE}', '.']
images: ['${IMAGE}']
YAML
gcloud builds submit --project "$PROJECT" --region "$REGION" --config "$CONFIG" .

gcloud dataflow flex-template build "$TEMPLATE" \
    --project "$PROJECT" \
    --image "$IMAGE" \
    --sdk-language PYTHON \
    --metadata-file templates/metadata.json

echo "TEMPLATE=$TEMPLATE"
