//! List-file datasets: ImageNet-LT, Places-LT and iNaturalist 2018 (Liu et al. 2019 splits).
//!
//! A list file holds one `relative/path.jpg label` per line (gcl-notes.md §5). Paths are
//! relative to an image root chosen at load time. Blank lines are ignored; anything else that
//! is not exactly `path label` (a non-negative integer label) is an error naming `file:line`.
//!
//! Places-LT lists circulate with two path conventions for the same images:
//! - MiSLAS / GCL: `data_256/a/apartment_building/outdoor/00000001.jpg` and
//!   `val_256/Places365_val_00000001.jpg` (the official Places365 `data_256` tree);
//! - Decoupling (Kang et al.): `train/apartment_building-outdoor/00000001.jpg` and
//!   `val/Places365_val_00000001.jpg`.
//!
//! [`PathRemap`] maps one onto the other so a list of either kind can be used with an image
//! tree of either kind (see [`PathRemap::from_spec`]).
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Name of the Places365 category-directory rewrite, MiSLAS/GCL tree -> Decoupling tree.
pub const PLACES_MISLAS: &str = "places:mislas";
/// Name of the Places365 category-directory rewrite, Decoupling tree -> MiSLAS/GCL tree.
pub const PLACES_DECOUPLING: &str = "places:decoupling";

/// How each list path is rewritten before it is joined to the image root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathRemap {
    /// Replace a leading `from` with `to`; paths not starting with `from` are kept as they are.
    Prefix { from: String, to: String },
    /// `data_256/a/apartment_building/outdoor/X.jpg` -> `train/apartment_building-outdoor/X.jpg`,
    /// `val_256/X.jpg` -> `val/X.jpg`.
    PlacesMislasToDecoupling,
    /// The inverse: `train/apartment_building-outdoor/X.jpg` ->
    /// `data_256/a/apartment_building/outdoor/X.jpg`, `val/X.jpg` -> `val_256/X.jpg`.
    PlacesDecouplingToMislas,
}

impl PathRemap {
    /// From the manifest's `dataset.path_remap = ["from", "to"]`. The pairs
    /// `["places:mislas", "places:decoupling"]` and `["places:decoupling", "places:mislas"]`
    /// name the Places-LT category-directory rewrites; any other pair is a plain prefix swap.
    pub fn from_spec(from: &str, to: &str) -> PathRemap {
        match (from, to) {
            (PLACES_MISLAS, PLACES_DECOUPLING) => PathRemap::PlacesMislasToDecoupling,
            (PLACES_DECOUPLING, PLACES_MISLAS) => PathRemap::PlacesDecouplingToMislas,
            _ => PathRemap::Prefix { from: from.to_string(), to: to.to_string() },
        }
    }

    /// The remap of a manifest's `dataset.path_remap`, if it sets one.
    pub fn from_config(path_remap: Option<&(String, String)>) -> Option<PathRemap> {
        path_remap.map(|(from, to)| PathRemap::from_spec(from, to))
    }

    /// Rewrite one list path. `None` when a named rewrite does not recognise the path's form.
    pub fn apply(&self, path: &str) -> Option<String> {
        match self {
            PathRemap::Prefix { from, to } => Some(match path.strip_prefix(from.as_str()) {
                Some(rest) => format!("{to}{rest}"),
                None => path.to_string(),
            }),
            PathRemap::PlacesMislasToDecoupling => {
                if let Some(rest) = path.strip_prefix("val_256/") {
                    return Some(format!("val/{rest}"));
                }
                // data_256/<letter>/<category parts...>/<file>
                let parts: Vec<&str> = path.strip_prefix("data_256/")?.split('/').collect();
                if parts.len() < 3 || parts[0].len() != 1 {
                    return None;
                }
                let (file, category) = (parts[parts.len() - 1], &parts[1..parts.len() - 1]);
                Some(format!("train/{}/{file}", category.join("-")))
            }
            PathRemap::PlacesDecouplingToMislas => {
                if let Some(rest) = path.strip_prefix("val/") {
                    return Some(format!("val_256/{rest}"));
                }
                let (category, file) = path.strip_prefix("train/")?.split_once('/')?;
                let letter = category.chars().next()?;
                Some(format!("data_256/{letter}/{}/{file}", category.replace('-', "/")))
            }
        }
    }
}

/// A parsed list file: image paths (relative, remapped) with their labels.
#[derive(Clone, Debug)]
pub struct ListDataset {
    /// `(relative image path, label)` in file order.
    pub entries: Vec<(PathBuf, i64)>,
    /// `max label + 1`.
    pub num_classes: usize,
    /// Images per class, indexed by label (length `num_classes`).
    pub class_counts: Vec<usize>,
    /// The list file this came from, for error messages.
    pub list_path: PathBuf,
    /// 1-based line number in `list_path` of each entry.
    pub line_numbers: Vec<usize>,
}

impl ListDataset {
    /// Read and parse a list file, applying `remap` to every path.
    pub fn from_file(list_path: &Path, remap: Option<&PathRemap>) -> Result<ListDataset> {
        let text = std::fs::read_to_string(list_path)
            .with_context(|| format!("cannot read list file {}", list_path.display()))?;
        Self::parse(&text, list_path, remap)
    }

    /// Parse list text; `list_path` only names the source in errors.
    pub fn parse(text: &str, list_path: &Path, remap: Option<&PathRemap>) -> Result<ListDataset> {
        let name = list_path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let mut entries = Vec::new();
        let mut line_numbers = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line_no = i + 1;
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() {
                continue;
            }
            let (path, label) =
                parse_line(line).with_context(|| format!("{name}:{line_no}: expected `path label`, got `{line}`"))?;
            let path = match remap {
                Some(r) => r.apply(path).with_context(|| {
                    format!("{name}:{line_no}: path `{path}` does not have the form the remap {r:?} expects")
                })?,
                None => path.to_string(),
            };
            entries.push((PathBuf::from(path), label));
            line_numbers.push(line_no);
        }
        if entries.is_empty() {
            bail!("list file {} has no entries (expected `path label` lines)", list_path.display());
        }
        let num_classes = entries.iter().map(|e| e.1).max().unwrap_or(0) as usize + 1;
        let mut class_counts = vec![0usize; num_classes];
        for (_, label) in &entries {
            class_counts[*label as usize] += 1;
        }
        Ok(ListDataset { entries, num_classes, class_counts, list_path: list_path.to_path_buf(), line_numbers })
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Labels in entry order (what samplers need).
    pub fn labels(&self) -> Vec<i64> {
        self.entries.iter().map(|e| e.1).collect()
    }

    /// `Places_LT_train.txt:17` for entry `index`, for messages about that entry.
    pub fn locate(&self, index: usize) -> String {
        let name = self.list_path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        format!("{name}:{}", self.line_numbers[index])
    }
}

/// `path label` -> (path, label). Paths contain no whitespace in any of the published lists.
fn parse_line(line: &str) -> Result<(&str, i64)> {
    let mut fields = line.split_whitespace();
    let (Some(path), Some(label), None) = (fields.next(), fields.next(), fields.next()) else {
        bail!("need exactly two fields");
    };
    let label: i64 = label.parse().map_err(|_| anyhow::anyhow!("label `{label}` is not an integer"))?;
    if label < 0 {
        bail!("label {label} is negative");
    }
    Ok((path, label))
}

/// The fields of the iNaturalist 2018 JSON annotations that the list form needs.
#[derive(Deserialize)]
struct InatJson {
    images: Vec<InatImage>,
    annotations: Vec<InatAnnotation>,
}

#[derive(Deserialize)]
struct InatImage {
    id: i64,
    file_name: String,
}

#[derive(Deserialize)]
struct InatAnnotation {
    image_id: i64,
    category_id: i64,
}

/// Convert iNaturalist 2018 official annotations (`train2018.json`, `val2018.json`: COCO-like
/// `images` [{id, file_name}] and `annotations` [{image_id, category_id}]) to a list file with
/// one `file_name category_id` line per image, in the order of `images`. Returns the number of
/// lines written. Every image must have exactly one annotation.
pub fn convert_inat_json(json_path: &Path, out_list: &Path) -> Result<usize> {
    // Whole-file read: serde_json parses a slice much faster than a reader.
    let bytes = std::fs::read(json_path)
        .with_context(|| format!("cannot read iNaturalist annotations {}", json_path.display()))?;
    let json: InatJson = serde_json::from_slice(&bytes).with_context(|| {
        format!("{} is not iNaturalist JSON with `images` [{{id, file_name}}] and `annotations` [{{image_id, category_id}}]", json_path.display())
    })?;
    let lines = inat_list_lines(&json).with_context(|| format!("in {}", json_path.display()))?;
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(out_list).with_context(|| format!("cannot create {}", out_list.display()))?,
    );
    for line in &lines {
        writeln!(out, "{line}")?;
    }
    out.flush().with_context(|| format!("cannot write {}", out_list.display()))?;
    Ok(lines.len())
}

fn inat_list_lines(json: &InatJson) -> Result<Vec<String>> {
    let mut category_of: HashMap<i64, i64> = HashMap::with_capacity(json.annotations.len());
    for a in &json.annotations {
        if category_of.insert(a.image_id, a.category_id).is_some() {
            bail!("image id {} has more than one annotation", a.image_id);
        }
    }
    json.images
        .iter()
        .map(|img| {
            if img.file_name.contains(char::is_whitespace) {
                bail!("file name `{}` contains whitespace, which the list format cannot hold", img.file_name);
            }
            match category_of.get(&img.id) {
                Some(c) if *c >= 0 => Ok(format!("{} {c}", img.file_name)),
                Some(c) => bail!("image id {} has negative category_id {c}", img.id),
                None => bail!("image id {} (`{}`) has no annotation", img.id, img.file_name),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_named_remaps_are_inverse() {
        let m = "data_256/a/apartment_building/outdoor/00000001.jpg";
        let d = "train/apartment_building-outdoor/00000001.jpg";
        assert_eq!(PathRemap::from_spec(PLACES_MISLAS, PLACES_DECOUPLING).apply(m).unwrap(), d);
        assert_eq!(PathRemap::from_spec(PLACES_DECOUPLING, PLACES_MISLAS).apply(d).unwrap(), m);
        assert_eq!(PathRemap::PlacesMislasToDecoupling.apply("val_256/P_1.jpg").unwrap(), "val/P_1.jpg");
        assert_eq!(PathRemap::PlacesMislasToDecoupling.apply("other/x.jpg"), None);
    }

    #[test]
    fn prefix_remap_only_touches_matching_paths() {
        let r = PathRemap::from_spec("val_256/", "val/");
        assert_eq!(r.apply("val_256/x.jpg").unwrap(), "val/x.jpg");
        assert_eq!(r.apply("data_256/x.jpg").unwrap(), "data_256/x.jpg");
    }

    #[test]
    fn bad_line_names_file_and_line() {
        let err =
            ListDataset::parse("a.jpg 0\nb.jpg 1\nc.jpg\n", Path::new("/x/Places_LT_train.txt"), None).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.starts_with("Places_LT_train.txt:3: expected `path label`, got `c.jpg`"), "{msg}");
    }
}
