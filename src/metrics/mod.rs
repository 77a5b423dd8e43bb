//! Segmentation and distance metrics. (Being written.)
