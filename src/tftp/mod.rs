//! TFTP (RFC 1350, 2347, 2348, 2349, 7440): wire codec and sans-I/O transfer core.
