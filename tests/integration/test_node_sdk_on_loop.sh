#!/usr/bin/env bash
# test_node_sdk.sh again with the chat listener on the router thread's loop (gateway.threads 0)
# instead of on MHD threads of its own (2, the default that test_node_sdk.sh runs).
SB_GW_THREADS=0 exec bash "$(dirname "$0")/test_node_sdk.sh"
