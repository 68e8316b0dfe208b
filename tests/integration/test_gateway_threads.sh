#!/usr/bin/env bash
# test_gateway.sh again with the chat listener on MHD threads of its own (gateway.threads 2,
# the shape before gateway.threads existed) instead of on the router thread's loop (0, the
# default that test_gateway.sh runs).
SB_GW_THREADS=2 exec bash "$(dirname "$0")/test_gateway.sh"
