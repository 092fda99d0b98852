"""The applied specs: apply (diff, versioned writes) and the cache every replica keeps compiled."""
