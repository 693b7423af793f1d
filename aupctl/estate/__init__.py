"""`estate`: every computer the directory knows (AD computer objects, OpenLDAP device entries), joined
with the laptop register, audited for supported OSes, staleness, LAPS and the 14-day patch rule."""
