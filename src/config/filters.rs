//! `PythonInputFilter` / `PythonOutputFilter` / `PythonConnectionHandler` arguments: pure
//! parsing and the data kept for each registered filter (no Apache calls; src/apache/filter.rs
//! registers them with Apache).

use super::check_handler_name;

/// Where a filter sits in Apache's chain (AP_FTYPE_*). `Connection` filters see the raw bytes
/// of every connection of the server they are declared in; the others are request filters,
/// switched on with SetOutputFilter / AddOutputFilter / SetInputFilter / FilterProvider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterType {
    Resource,
    ContentSet,
    Protocol,
    Transcode,
    Connection,
}

impl FilterType {
    pub fn parse(s: &str) -> Result<FilterType, String> {
        match s.to_ascii_uppercase().as_str() {
            "RESOURCE" => Ok(FilterType::Resource),
            "CONTENT_SET" => Ok(FilterType::ContentSet),
            "PROTOCOL" => Ok(FilterType::Protocol),
            "TRANSCODE" => Ok(FilterType::Transcode),
            "CONNECTION" => Ok(FilterType::Connection),
            _ => Err(format!(
                "'{s}' is not a filter type: expected CONNECTION, RESOURCE, CONTENT_SET, PROTOCOL or TRANSCODE"
            )),
        }
    }

    pub fn is_connection(self) -> bool {
        self == FilterType::Connection
    }
}

/// One `PythonInputFilter` / `PythonOutputFilter` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterSpec {
    /// `module[::function]` (the function defaults to `inputfilter` / `outputfilter`).
    pub handler: String,
    /// The name as written in the directive (Apache compares filter names case-insensitively).
    pub name: String,
    pub input: bool,
    pub ftype: FilterType,
    /// Where the module is looked up first (req.register_*_filter's `dir`); None: sys.path.
    pub directory: Option<String>,
}

impl FilterSpec {
    pub fn module_and_function(&self) -> (&str, &str) {
        match self.handler.split_once("::") {
            Some((m, f)) => (m, f),
            None => (
                self.handler.as_str(),
                if self.input {
                    "inputfilter"
                } else {
                    "outputfilter"
                },
            ),
        }
    }

    /// The lower-case name Apache registers the filter under.
    pub fn key(&self) -> String {
        self.name.to_ascii_lowercase()
    }
}

/// Parses `module[::function] NAME [TYPE]`.
pub fn parse_filter_args(
    input: bool,
    handler: &str,
    name: &str,
    ftype: Option<&str>,
) -> Result<FilterSpec, String> {
    check_handler_name(handler)?;
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("'{name}' is not a filter name"));
    }
    let ftype = match ftype {
        Some(t) => FilterType::parse(t)?,
        None => FilterType::Resource,
    };
    Ok(FilterSpec {
        handler: handler.to_string(),
        name: name.to_string(),
        input,
        ftype,
        directory: None,
    })
}

/// `module[::function]` of `PythonConnectionHandler` (function defaults to
/// `connectionhandler`, as in mod_python).
pub fn connection_handler_parts(h: &str) -> (&str, &str) {
    h.split_once("::").unwrap_or((h, "connectionhandler"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_args() {
        let s = parse_filter_args(false, "app::upper", "UPPER", None).unwrap();
        assert_eq!(s.module_and_function(), ("app", "upper"));
        assert_eq!(s.ftype, FilterType::Resource);
        assert_eq!(s.key(), "upper");
        let s = parse_filter_args(true, "pkg.filters", "Lower", Some("connection")).unwrap();
        assert_eq!(s.module_and_function(), ("pkg.filters", "inputfilter"));
        assert!(s.ftype.is_connection());
        let s = parse_filter_args(false, "m", "X", None).unwrap();
        assert_eq!(s.module_and_function(), ("m", "outputfilter"));
        assert_eq!(
            parse_filter_args(false, "m", "X", Some("content_set"))
                .unwrap()
                .ftype,
            FilterType::ContentSet
        );
    }

    #[test]
    fn filter_args_errors() {
        assert!(parse_filter_args(false, "9x", "X", None)
            .unwrap_err()
            .contains("module name"));
        assert!(parse_filter_args(false, "m", "A B", None)
            .unwrap_err()
            .contains("filter name"));
        assert!(parse_filter_args(false, "m", "X", Some("NETWORK"))
            .unwrap_err()
            .contains("not a filter type"));
    }

    #[test]
    fn connection_handler() {
        assert_eq!(
            connection_handler_parts("echo"),
            ("echo", "connectionhandler")
        );
        assert_eq!(connection_handler_parts("echo::serve"), ("echo", "serve"));
    }
}
