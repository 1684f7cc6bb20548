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
    /// `cpu-priority=`: the workers' nice value (mod_wsgi's option; 0 leaves it alone).
    pub cpu_priority: i32,
    /// `cpu-policy=`: the workers' Linux scheduling policy (mod_py's; see [`CpuPolicy`]).
    pub cpu_policy: CpuPolicy,
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

/// The scheduling policy daemon workers run under (sched(7)); the default is the system's.
/// `batch` and `idle` are for groups that should yield the CPU to the rest of the server
/// (batch: fair share but no wake-up preemption; idle: only spare CPU). Measured on the
/// bench, `batch` for the workers alone changes nothing; for the whole server (systemd's
/// `CPUSchedulingPolicy=batch`) see bench/README.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuPolicy {
    /// SCHED_OTHER, what every process gets by default.
    Other,
    /// SCHED_BATCH: fair share, no wake-up preemption.
    Batch,
    /// SCHED_IDLE: runs only when nothing else wants the CPU (background groups).
    Idle,
}

impl CpuPolicy {
    /// The `sched_setscheduler` constant.
    pub fn sched_policy(self) -> i32 {
        match self {
            CpuPolicy::Other => libc::SCHED_OTHER,
            CpuPolicy::Batch => libc::SCHED_BATCH,
            CpuPolicy::Idle => libc::SCHED_IDLE,
        }
    }
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
            cpu_priority: 0,
            cpu_policy: CpuPolicy::Other,
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
            "cpu-priority" => {
                g.cpu_priority = v
                    .parse::<i32>()
                    .ok()
                    .filter(|n| (-20..=19).contains(n))
                    .ok_or_else(|| {
                        format!("cpu-priority= expects a nice value from -20 to 19, not '{v}'")
                    })?
            }
            "cpu-policy" => {
                g.cpu_policy = match v {
                    "other" | "normal" => CpuPolicy::Other,
                    "batch" => CpuPolicy::Batch,
                    "idle" => CpuPolicy::Idle,
                    _ => {
                        return Err(format!(
                            "cpu-policy= expects batch, other or idle, not '{v}'"
                        ))
                    }
                }
            }
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
        assert_eq!((g.cpu_priority, g.cpu_policy), (0, CpuPolicy::Other));
    }

    #[test]
    fn cpu_options() {
        let g = parse("g cpu-priority=-5 cpu-policy=batch").unwrap();
        assert_eq!((g.cpu_priority, g.cpu_policy), (-5, CpuPolicy::Batch));
        assert_eq!(
            parse("g cpu-policy=other").unwrap().cpu_policy,
            CpuPolicy::Other
        );
        assert_eq!(
            parse("g cpu-policy=idle").unwrap().cpu_policy,
            CpuPolicy::Idle
        );
        assert_eq!(CpuPolicy::Batch.sched_policy(), libc::SCHED_BATCH);
        assert!(parse("g cpu-priority=20")
            .unwrap_err()
            .contains("-20 to 19"));
        assert!(parse("g cpu-priority=x")
            .unwrap_err()
            .contains("cpu-priority"));
        assert!(parse("g cpu-policy=fifo")
            .unwrap_err()
            .contains("batch, other or idle"));
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

/// `WSGIDaemonTemplate NAME option=value ...`: a daemon group made on demand, one instance
/// per distinct value of the placeholders its options use (`%{SERVER}`, `%{USER}`,
/// `%{ENV:NAME}`; `%{GROUP}` is the instance's own name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonTemplate {
    pub name: String,
    /// The WSGIDaemonProcess options, placeholders unexpanded.
    pub options: Vec<String>,
    pub max_instances: usize,
    pub min_uid: u32,
    pub users: Option<Vec<String>>,
}

/// The request values a template instance is chosen by.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateValues {
    pub server: String,
    pub user: Option<String>,
    pub env: Vec<(String, String)>,
}

impl DaemonTemplate {
    /// The placeholders the options use, in order (`SERVER`, `USER`, `ENV:NAME`).
    pub fn placeholders(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for o in &self.options {
            let mut rest = o.as_str();
            while let Some(i) = rest.find("%{") {
                let Some(j) = rest[i..].find('}') else { break };
                let p = &rest[i + 2..i + j];
                if p != "GROUP" && !out.iter().any(|x| x == p) {
                    out.push(p.to_string());
                }
                rest = &rest[i + j + 1..];
            }
        }
        out
    }

    fn value<'a>(&self, p: &str, v: &'a TemplateValues) -> Option<&'a str> {
        match p {
            "SERVER" => Some(v.server.as_str()),
            "USER" => v.user.as_deref(),
            _ => p
                .strip_prefix("ENV:")
                .and_then(|k| v.env.iter().find(|(n, _)| n == k).map(|(_, x)| x.as_str())),
        }
    }

    /// The instance's name: the template's, then each placeholder's value.
    pub fn instance_name(&self, v: &TemplateValues) -> Result<String, String> {
        let mut name = self.name.clone();
        for p in self.placeholders() {
            let x = self
                .value(&p, v)
                .filter(|x| !x.is_empty())
                .ok_or_else(|| format!("%{{{p}}} has no value for this request"))?;
            if x.contains(['/', '\0', '\n', ':', '%', ' ', '\t']) {
                return Err(format!("%{{{p}}} value {x:?} cannot name a daemon process"));
            }
            name.push(':');
            name.push_str(x);
        }
        Ok(name)
    }

    /// The instance's WSGIDaemonProcess definition for these values.
    pub fn expand(&self, v: &TemplateValues) -> Result<DaemonGroup, String> {
        let instance = self.instance_name(v)?;
        let mut words = vec![instance.clone()];
        let mut has_inactivity = false;
        let mut has_display = false;
        for o in &self.options {
            let mut out = o.replace("%{GROUP}", &instance);
            for p in self.placeholders() {
                if let Some(x) = self.value(&p, v) {
                    out = out.replace(&format!("%{{{p}}}"), x);
                }
            }
            has_inactivity |= out.starts_with("inactivity-timeout=");
            has_display |= out.starts_with("display-name=");
            words.push(out);
        }
        if !has_inactivity {
            words.push("inactivity-timeout=300".into());
        }
        if !has_display {
            words.push(format!("display-name=modpy:{instance}"));
        }
        parse_daemon_process(&words)
    }
}

/// Parses `WSGIDaemonTemplate NAME option=value ...`; the WSGIDaemonProcess options are
/// checked with sample values so that mistakes fail the configuration.
pub fn parse_daemon_template(words: &[String]) -> Result<DaemonTemplate, String> {
    let Some((name, options)) = words.split_first() else {
        return Err("expected: name [option=value ...]".into());
    };
    if name.is_empty() || name.contains(['/', '\0', ':', '%']) {
        return Err(format!("invalid daemon template name '{name}'"));
    }
    let mut t = DaemonTemplate {
        name: name.clone(),
        options: Vec::new(),
        max_instances: 64,
        min_uid: 1000,
        users: None,
    };
    for o in options {
        match o.split_once('=') {
            Some(("max-instances", v)) => t.max_instances = number("max-instances", v, 1usize)?,
            Some(("min-uid", v)) => t.min_uid = number("min-uid", v, 1u32)?,
            Some(("users", v)) => {
                t.users = Some(
                    v.split(',')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect(),
                )
            }
            _ => t.options.push(o.clone()),
        }
    }
    let sample = TemplateValues {
        server: "example.org".into(),
        user: Some("sample".into()),
        env: t
            .placeholders()
            .iter()
            .filter_map(|p| {
                p.strip_prefix("ENV:")
                    .map(|k| (k.to_string(), "x".to_string()))
            })
            .collect(),
    };
    for p in t.placeholders() {
        if !(p == "SERVER" || p == "USER" || p.starts_with("ENV:")) {
            return Err(format!("unknown placeholder %{{{p}}} (expected %{{SERVER}}, %{{USER}}, %{{ENV:NAME}} or %{{GROUP}})"));
        }
    }
    t.expand(&sample)?;
    Ok(t)
}

#[cfg(test)]
mod template_tests {
    use super::*;

    fn t(s: &str) -> Result<DaemonTemplate, String> {
        parse_daemon_template(&s.split_whitespace().map(str::to_string).collect::<Vec<_>>())
    }

    #[test]
    fn instances_and_expansion() {
        let tpl =
            t("peruser user=%{USER} home=/home/%{USER} threads=2 max-instances=2 users=alice,bob")
                .unwrap();
        assert_eq!(tpl.placeholders(), ["USER"]);
        assert_eq!(tpl.max_instances, 2);
        assert_eq!(
            tpl.users.as_deref(),
            Some(&["alice".to_string(), "bob".to_string()][..])
        );
        let v = TemplateValues {
            server: "s".into(),
            user: Some("alice".into()),
            env: vec![],
        };
        assert_eq!(tpl.instance_name(&v).unwrap(), "peruser:alice");
        let g = tpl.expand(&v).unwrap();
        assert_eq!(g.name, "peruser:alice");
        assert_eq!(g.user.as_deref(), Some("alice"));
        assert_eq!(g.home.as_deref(), Some("/home/alice"));
        assert_eq!(g.inactivity_timeout, std::time::Duration::from_secs(300));
        assert_eq!(g.process_title().as_deref(), Some("modpy:peruser:alice"));
        let none = TemplateValues {
            user: None,
            ..v.clone()
        };
        assert!(tpl.instance_name(&none).is_err());
        let evil = TemplateValues {
            user: Some("../x".into()),
            ..v
        };
        assert!(tpl.instance_name(&evil).is_err());
    }

    #[test]
    fn errors() {
        assert!(t("x bogus=1").is_err());
        assert!(t("x threads=%{USER}").is_err());
        assert!(t("x display-name=%{NOPE}").unwrap_err().contains("NOPE"));
        assert!(t("a:b").is_err());
        assert_eq!(
            t("vh display-name=%{SERVER}").unwrap().placeholders(),
            ["SERVER"]
        );
    }
}
