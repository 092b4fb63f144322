// The port of the read-only 9P process view, shared by the mapper that serves it and the pod,
// Service and IDS-VM forwarder that reach it.

/** The IANA-registered port of 9P is 564; 5640 needs no privilege and says the same. */
export const PROCFS_PORT = 5640;
