//! ControlNet: the preprocessors that turn a unit's input image into its control map.

pub mod preprocess;
