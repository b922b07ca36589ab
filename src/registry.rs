//! The one way a settings table whose variants own their settings is declared (the manifest's
//! `loss` tagged by `kind`, `stage2.rebalance` by `method`, `sampler` by `kind`): one line per
//! variant in a [`tagged_settings!`] invocation declares the enum variant and registers it, so
//! its name, its defaults, the manifest schema, the merge rules and `explain` know it.

/// Declares a serde-tagged settings enum, one `Variant(Settings)` line per variant, with
/// `all_defaults()` (every variant with its settings' `Default`, in registration order),
/// `$name()` (the variant's manifest name: its tag as serialised), `default_of(name)` and
/// `$names()`. The caller writes the serde attributes (`#[serde(tag = "...", rename_all =
/// "snake_case")]`) and passes the tag key once more as `$tag` for the name lookup.
macro_rules! tagged_settings {
    (
        $(#[$meta:meta])*
        pub enum $enum:ident by $tag:literal, $name:ident, $names:ident {
            $($(#[$vmeta:meta])* $variant:ident($settings:ty)),* $(,)?
        }
    ) => {
        #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        $(#[$meta])*
        pub enum $enum {
            $($(#[$vmeta])* $variant($settings),)*
        }

        impl $enum {
            /// Every registered variant with its default settings, in registration order.
            pub fn all_defaults() -> Vec<$enum> {
                vec![$($enum::$variant(<$settings>::default()),)*]
            }

            /// The manifest name of this variant (its serde tag).
            pub fn $name(&self) -> String {
                match serde_json::to_value(self).ok().and_then(|v| v.get($tag).and_then(|k| k.as_str().map(str::to_string))) {
                    Some(k) => k,
                    None => unreachable!("a {} serialises with its `{}` tag", stringify!($enum), $tag),
                }
            }

            /// The default settings of the variant named `name`, if one is registered.
            pub fn default_of(name: &str) -> Option<$enum> {
                $enum::all_defaults().into_iter().find(|v| v.$name() == name)
            }

            /// The manifest names of every registered variant, in registration order.
            pub fn $names() -> Vec<String> {
                $enum::all_defaults().iter().map($enum::$name).collect()
            }
        }
    };
}

pub(crate) use tagged_settings;
