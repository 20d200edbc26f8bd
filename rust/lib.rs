//! loopwave's native core: colour kernels over frame batches ([`kernels`]) and,
//! with the `python` feature, their PyO3 bindings (`loopwave._native`).

pub mod kernels;

#[cfg(feature = "python")]
mod py;

#[cfg(feature = "python")]
pub use py::_native;
