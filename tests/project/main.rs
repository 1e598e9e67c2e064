//! The project agrees with itself: README's commands and figures, the image's tags and build,
//! and what a pull-request review of rendered output sees. One test binary, as each links all
//! of kflex.

mod image;
mod readme;
mod review;
