// A declaration-only module: see include/CFuzzDriver.h.
