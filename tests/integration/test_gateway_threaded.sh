#!/usr/bin/env bash
# test_gateway.sh again with the chat listener on MHD threads of its own (gateway.threads 2,
# the default on more than 2 online cores) instead of on the router thread's loop (0, the
# default on 2 or fewer, which test_gateway.sh runs).
SB_GW_THREADS=2 exec bash "$(dirname "$0")/test_gateway.sh"
