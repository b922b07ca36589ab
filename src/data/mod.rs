//! Datasets: CIFAR-10/100 (official binaries), their long-tailed subsets, the built-in
//! synthetic set, and list-file datasets (ImageNet-LT, Places-LT, iNaturalist 2018).
pub mod catalog;
pub mod images;
pub mod listfile;
