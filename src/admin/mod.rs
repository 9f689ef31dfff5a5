//! The admin HTTP/1.1 plane.
