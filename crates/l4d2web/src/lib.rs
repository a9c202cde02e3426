//! left4me web app.
