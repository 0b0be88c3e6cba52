//! DHCPv4 for PXE (RFC 2131, RFC 4578): sans-I/O decision core.
