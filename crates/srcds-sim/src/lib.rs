//! srcds-sim library.
