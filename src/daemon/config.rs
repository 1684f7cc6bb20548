//! `WSGIDaemonProcess name option=value ...`: mod_wsgi 4.x's options and defaults, plus
//! mod_py's `python-executable=`. Pure data, parsed from the directive's words.

use std::time::Duration;

/// One daemon process group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonGroup {
    pub name: String,
    pub processes: u32,
    pub threads: u32,
    pub user: Option<String>,
    pub group: Option<String>,
    pub supplementary_groups: Vec<String>,
    pub chroot: Option<String>,
    pub home: Option<String>,
    pub python_home: Option<String>,
    pub python_path: Vec<String>,
    pub python_eggs: Option<String>,
    pub python_executable: Option<String>,
    pub lang: Option<String>,
    pub locale: Option<String>,
    pub display_name: Option<String>,
    pub umask: Option<u32>,
    pub maximum_requests: u64,
    pub restart_interval: Duration,
    pub inactivity_timeout: Duration,
    pub request_timeout: Duration,
    pub graceful_timeout: Duration,
    pub shutdown_timeout: Duration,
    pub deadlock_timeout: Duration,
    pub cpu_time_limit: u64,
    pub memory_limit: u64,
    pub virtual_memory_limit: u64,
    pub connect_timeout: Duration,
    /// 0: Apache's `Timeout`.
    pub socket_timeout: Duration,
    pub queue_timeout: Duration,
    pub listen_backlog: u32,
    pub script_user: Option<String>,
    pub script_group: Option<String>,
    pub socket_user: Option<String>,
}

impl DaemonGroup {
    /// mod_wsgi's defaults: one process of 15 threads, graceful-timeout 15 s,
    /// shutdown-timeout 5 s, deadlock-timeout 300 s, connect-timeout 15 s, backlog 100.
    pub fn new(name: &str) -> DaemonGroup {
        DaemonGroup {
            name: name.to_string(),
            processes: 1,
            threads: 15,
            user: None,
            group: None,
            supplementary_groups: Vec::new(),
            chroot: None,
            home: None,
            python_home: None,
            python_path: Vec::new(),
            python_eggs: None,
            python_executable: None,
            lang: None,
            locale: None,
            display_name: None,
            umask: None,
            maximum_requests: 0,
            restart_interval: Duration::ZERO,
            inactivity_timeout: Duration::ZERO,
            request_timeout: Duration::ZERO,
            graceful_timeout: Duration::from_secs(15),
            shutdown_timeout: Duration::from_secs(5),
            deadlock_timeout: Duration::from_secs(300),
            cpu_time_limit: 0,
            memory_limit: 0,
            virtual_memory_limit: 0,
            connect_timeout: Duration::from_secs(15),
            socket_timeout: Duration::ZERO,
            queue_timeout: Duration::ZERO,
            listen_backlog: 100,
            script_user: None,
            script_group: None,
            socket_user: None,
        }
    }

    /// The name shown by ps: display-name, `%{GROUP}` meaning `(wsgi:NAME)` as in mod_wsgi.
    pub fn process_title(&self) -> Option<String> {
        self.display_name.as_ref().map(|d| {
            if d == "%{GROUP}" {
                format!("(wsgi:{})", self.name)
            } else {
                d.clone()
            }
        })
    }
}

fn secs(key: &str, v: &str) -> Result<Duration, String> {
    v.parse::<u64>()
        .map(Duration::from_secs)
        .map_err(|_| format!("{key}= expects a number of seconds, not '{v}'"))
}

fn number<T>(key: &str, v: &str, min: T) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let n: T = v
        .parse()
        .map_err(|_| format!("{key}= expects a number, not '{v}'"))?;
    if n < min {
        return Err(format!("{key}= must be at least {min}, not {v}"));
    }
    Ok(n)
}

/// Parses the words of a WSGIDaemonProcess directive (name first).
pub fn parse_daemon_process(words: &[String]) -> Result<DaemonGroup, String> {
    let Some((name, options)) = words.split_first() else {
        return Err("expected: name [option=value ...]".into());
    };
    if name.is_empty() || name.contains(['/', '\0']) || name.starts_with('%') {
        return Err(format!("invalid daemon process group name '{name}'"));
    }
    let mut g = DaemonGroup::new(name);
    for opt in options {
        let Some((key, v)) = opt.split_once('=') else {
            return Err(format!(
                "invalid option '{opt}' to WSGI daemon process definition (expected option=value)"
            ));
        };
        let text = || -> Result<Option<String>, String> {
            if v.is_empty() {
                Err(format!("{key}= needs a value"))
            } else {
                Ok(Some(v.to_string()))
            }
        };
        match key {
            "processes" => g.processes = number(key, v, 1u32)?,
            "threads" => g.threads = number(key, v, 1u32)?,
            "user" => g.user = text()?,
            "group" => g.group = text()?,
            "supplementary-groups" => {
                g.supplementary_groups = v
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            }
            "chroot" => g.chroot = text()?,
            "home" => g.home = text()?,
            "python-home" => g.python_home = text()?,
            "python-path" => {
                g.python_path = v
                    .split(':')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            }
            "python-eggs" => g.python_eggs = text()?,
            "python-executable" => g.python_executable = text()?,
            "lang" => g.lang = text()?,
            "locale" => g.locale = text()?,
            "display-name" => g.display_name = text()?,
            "umask" => {
                g.umask = Some(
                    u32::from_str_radix(v, 8)
                        .ok()
                        .filter(|m| *m <= 0o777)
                        .ok_or_else(|| format!("umask= expects an octal mask, not '{v}'"))?,
                )
            }
            "maximum-requests" => g.maximum_requests = number(key, v, 0u64)?,
            "restart-interval" => g.restart_interval = secs(key, v)?,
            "inactivity-timeout" => g.inactivity_timeout = secs(key, v)?,
            "request-timeout" => g.request_timeout = secs(key, v)?,
            "graceful-timeout" => g.graceful_timeout = secs(key, v)?,
            "shutdown-timeout" => g.shutdown_timeout = secs(key, v)?,
            "deadlock-timeout" => g.deadlock_timeout = secs(key, v)?,
            "cpu-time-limit" => g.cpu_time_limit = number(key, v, 0u64)?,
            "memory-limit" => g.memory_limit = number(key, v, 0u64)?,
            "virtual-memory-limit" => g.virtual_memory_limit = number(key, v, 0u64)?,
            "connect-timeout" => g.connect_timeout = secs(key, v)?,
            "socket-timeout" => g.socket_timeout = secs(key, v)?,
            "queue-timeout" => g.queue_timeout = secs(key, v)?,
            "listen-backlog" => g.listen_backlog = number(key, v, 1u32)?,
            "script-user" => g.script_user = text()?,
            "script-group" => g.script_group = text()?,
            "socket-user" => g.socket_user = text()?,
            _ => {
                return Err(format!(
                    "invalid option '{key}' to WSGI daemon process definition"
                ))
            }
        }
    }
    Ok(g)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<DaemonGroup, String> {
        let words: Vec<String> = s.split_whitespace().map(str::to_string).collect();
        parse_daemon_process(&words)
    }

    #[test]
    fn defaults_are_mod_wsgi_s() {
        let g = parse("site").unwrap();
        assert_eq!((g.processes, g.threads, g.listen_backlog), (1, 15, 100));
        assert_eq!(g.graceful_timeout, Duration::from_secs(15));
        assert_eq!(g.shutdown_timeout, Duration::from_secs(5));
        assert_eq!(g.connect_timeout, Duration::from_secs(15));
        assert_eq!(g.maximum_requests, 0);
    }

    #[test]
    fn options() {
        let g = parse("g processes=3 threads=4 user=www-data maximum-requests=100 umask=0027 display-name=%{GROUP} python-path=/a:/b inactivity-timeout=30 python-executable=/opt/py/bin/python3.12").unwrap();
        assert_eq!((g.processes, g.threads), (3, 4));
        assert_eq!(g.user.as_deref(), Some("www-data"));
        assert_eq!(g.umask, Some(0o027));
        assert_eq!(g.process_title().as_deref(), Some("(wsgi:g)"));
        assert_eq!(g.python_path, ["/a", "/b"]);
        assert_eq!(g.inactivity_timeout, Duration::from_secs(30));
        assert_eq!(
            g.python_executable.as_deref(),
            Some("/opt/py/bin/python3.12")
        );
    }

    #[test]
    fn errors_name_the_option() {
        assert!(parse("g bogus=1").unwrap_err().contains("bogus"));
        assert!(parse("g threads=0").unwrap_err().contains("threads"));
        assert!(parse("g threads=x").unwrap_err().contains("threads"));
        assert!(parse("g umask=999").unwrap_err().contains("umask"));
        assert!(parse("g user").unwrap_err().contains("user"));
        assert!(parse("").is_err());
        assert!(parse("a/b").is_err());
    }
}
