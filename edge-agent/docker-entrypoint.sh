#!/bin/sh
# Initialises the agent from EDGE_AGENT_API, EDGE_AGENT_CLIENT_ID and
# EDGE_AGENT_CLIENT_SECRET on its first start, then syncs until stopped.
set -eu
if ! edge-agent status --json | grep -q '"deviceId":"'; then
  : "${EDGE_AGENT_API:?set EDGE_AGENT_API (npm run deploy:localstack writes it)}"
  : "${EDGE_AGENT_CLIENT_ID:?set EDGE_AGENT_CLIENT_ID}"
  : "${EDGE_AGENT_CLIENT_SECRET:?set EDGE_AGENT_CLIENT_SECRET}"
  edge-agent init --api "$EDGE_AGENT_API" \
    --client-id "$EDGE_AGENT_CLIENT_ID" --client-secret "$EDGE_AGENT_CLIENT_SECRET"
fi
exec edge-agent run --interval "${EDGE_AGENT_INTERVAL:-5}"
