"""`callscope simulate`: a fake PBX that streams calls at a running callscope."""
