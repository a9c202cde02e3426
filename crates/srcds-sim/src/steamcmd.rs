//! steamcmd simulation (todo)
