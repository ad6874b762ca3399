//! Service defaulting and validation: cluster IPs, IP families, node ports, policies, and the
//! load-balancer status, the way a real (dual-stack, IPv4-primary) API server treats them.

use std::collections::HashSet;
use std::net::IpAddr;

use serde_json::{Map, Value, json};

use crate::allocator::{Allocators, Family, Grant, NODE_PORTS, Refusal};
use crate::status::FieldError;

const TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
const POLICIES: &[&str] = &["SingleStack", "PreferDualStack", "RequireDualStack"];

/// What a prepared Service change took and gives back; applied or rolled back by the caller.
#[derive(Debug, Default)]
pub struct Plan {
    /// Grants taken for the new object.
    pub taken: Vec<Grant>,
    /// Grants of the old object the new one no longer holds (released on commit).
    pub released: Vec<Grant>,
}

impl Plan {
    /// Commits: releases what the old object held and the new one does not.
    pub fn commit(self, alloc: &mut Allocators) {
        for g in self.released {
            alloc.release(g);
        }
    }

    /// Rolls back: releases what was taken.
    pub fn rollback(self, alloc: &mut Allocators) {
        for g in self.taken {
            alloc.release(g);
        }
    }
}

/// Everything a Service object holds in the allocators.
pub fn grants_of(service: &Value) -> Vec<Grant> {
    let mut out = Vec::new();
    let spec = &service["spec"];
    if let Some(ips) = spec["clusterIPs"].as_array() {
        for ip in ips.iter().filter_map(Value::as_str) {
            if let Ok(ip) = ip.parse::<IpAddr>() {
                out.push(Grant::Ip(ip));
            }
        }
    }
    if let Some(ports) = spec["ports"].as_array() {
        for p in ports {
            if let Some(n) = p["nodePort"].as_u64().and_then(|n| u16::try_from(n).ok()) {
                out.push(Grant::Port(n));
            }
        }
    }
    if let Some(n) = spec["healthCheckNodePort"]
        .as_u64()
        .and_then(|n| u16::try_from(n).ok())
    {
        out.push(Grant::Port(n));
    }
    out
}

fn str_of<'a>(spec: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    spec.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// Takes a grant, or reuses one the old object already held.
struct Taker<'a> {
    alloc: &'a mut Allocators,
    owned: HashSet<Grant>,
    plan: Plan,
}

impl Taker<'_> {
    fn take_ip(&mut self, ip: IpAddr) -> Result<(), Refusal> {
        if self.owned.remove(&Grant::Ip(ip)) {
            return Ok(());
        }
        let g = self.alloc.take_ip(ip)?;
        self.plan.taken.push(g);
        Ok(())
    }

    fn new_ip(&mut self, family: Family) -> Result<IpAddr, Refusal> {
        let g = self.alloc.allocate_ip(family)?;
        self.plan.taken.push(g);
        match g {
            Grant::Ip(ip) => Ok(ip),
            Grant::Port(_) => Err(Refusal::Exhausted),
        }
    }

    fn take_port(&mut self, port: u16) -> Result<(), Refusal> {
        if self.owned.remove(&Grant::Port(port)) {
            return Ok(());
        }
        let g = self.alloc.take_port(port)?;
        self.plan.taken.push(g);
        Ok(())
    }

    fn new_port(&mut self) -> Result<u16, Refusal> {
        let g = self.alloc.allocate_port()?;
        self.plan.taken.push(g);
        match g {
            Grant::Port(p) => Ok(p),
            Grant::Ip(_) => Err(Refusal::Exhausted),
        }
    }
}

fn ip_refusal(field: String, ip: &str, family: Family, why: Refusal) -> FieldError {
    let detail = match why {
        Refusal::OutOfRange => format!(
            "failed to allocate IP {ip}: provided IP is not in the valid range. The range of valid IPs is {}",
            family.cidr_text()
        ),
        Refusal::InUse => format!("failed to allocate IP {ip}: provided IP is already allocated"),
        Refusal::Exhausted => format!("failed to allocate IP {ip}: range is full"),
    };
    FieldError::invalid(field, &json!([ip]), &detail)
}

fn port_refusal(field: String, port: u16, why: Refusal) -> FieldError {
    let detail = match why {
        Refusal::OutOfRange => format!(
            "provided port is not in the valid range. The range of valid ports is {}-{}",
            NODE_PORTS.0, NODE_PORTS.1
        ),
        Refusal::InUse => "provided port is already allocated".to_string(),
        Refusal::Exhausted => "range is full".to_string(),
    };
    FieldError::invalid(field, &json!(port), &detail)
}

fn parse_family(v: &Value) -> Option<Family> {
    match v.as_str() {
        Some("IPv4") => Some(Family::V4),
        Some("IPv6") => Some(Family::V6),
        _ => None,
    }
}

/// Defaults and validates `spec` of a new or updated Service, taking cluster IPs and node ports.
/// On error nothing stays taken.
pub fn prepare(
    service: &mut Value,
    old: Option<&Value>,
    alloc: &mut Allocators,
) -> Result<Plan, Vec<FieldError>> {
    let owned: HashSet<Grant> = old.map(grants_of).unwrap_or_default().into_iter().collect();
    let mut taker = Taker {
        alloc,
        owned,
        plan: Plan::default(),
    };
    let result = prepare_spec(service, old, &mut taker);
    if result.is_ok() {
        reset_load_balancer_status(service, old);
    }
    let Taker {
        alloc,
        owned,
        mut plan,
    } = taker;
    match result {
        Ok(()) => {
            plan.released = owned.into_iter().collect();
            Ok(plan)
        }
        Err(errors) => {
            plan.rollback(alloc);
            Err(errors)
        }
    }
}

/// The real server empties `status.loadBalancer` when an update moves a Service away from
/// type LoadBalancer (the ingress it had no longer means anything).
fn reset_load_balancer_status(service: &mut Value, old: Option<&Value>) {
    let type_of = |v: &Value| {
        v.get("spec")
            .and_then(|s| s.get("type"))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let was_lb = old.and_then(type_of).as_deref() == Some("LoadBalancer");
    if was_lb
        && type_of(service).as_deref() != Some("LoadBalancer")
        && let Some(obj) = service.as_object_mut()
    {
        obj.insert("status".into(), json!({"loadBalancer": {}}));
    }
}

fn prepare_spec(
    service: &mut Value,
    old: Option<&Value>,
    taker: &mut Taker<'_>,
) -> Result<(), Vec<FieldError>> {
    let old_spec = old
        .and_then(|o| o.get("spec"))
        .and_then(Value::as_object)
        .cloned();
    let Some(obj) = service.as_object_mut() else {
        return Err(vec![FieldError::required("spec", "")]);
    };
    let spec_value = obj.entry("spec").or_insert_with(|| json!({}));
    if !spec_value.is_object() {
        return Err(vec![FieldError::invalid(
            "spec",
            spec_value,
            "must be an object",
        )]);
    }
    let Value::Object(spec) = spec_value else {
        return Ok(());
    };
    let mut errors = Vec::new();

    let ty = str_of(spec, "type").unwrap_or("ClusterIP").to_string();
    if !TYPES.contains(&ty.as_str()) {
        return Err(vec![FieldError::not_supported(
            "spec.type",
            &json!(ty),
            TYPES,
        )]);
    }
    spec.insert("type".into(), json!(ty));
    let old_ty = old_spec
        .as_ref()
        .and_then(|s| str_of(s, "type"))
        .unwrap_or("");
    let is_lb = ty == "LoadBalancer";
    let external = is_lb || ty == "NodePort";

    // Fields the real server drops when the type changes away from where they apply.
    if let Some(os) = &old_spec {
        if old_ty == "LoadBalancer" && !is_lb {
            for key in [
                "loadBalancerClass",
                "allocateLoadBalancerNodePorts",
                "healthCheckNodePort",
            ] {
                if spec.get(key) == os.get(key) {
                    spec.remove(key);
                }
            }
        }
        if (old_ty == "LoadBalancer" || old_ty == "NodePort")
            && !external
            && spec.get("externalTrafficPolicy") == os.get("externalTrafficPolicy")
        {
            spec.remove("externalTrafficPolicy");
        }
    }

    let affinity = str_of(spec, "sessionAffinity")
        .unwrap_or("None")
        .to_string();
    if !["None", "ClientIP"].contains(&affinity.as_str()) {
        errors.push(FieldError::not_supported(
            "spec.sessionAffinity",
            &json!(affinity),
            &["ClientIP", "None"],
        ));
    }
    spec.insert("sessionAffinity".into(), json!(affinity));

    if external {
        let etp = str_of(spec, "externalTrafficPolicy")
            .unwrap_or("Cluster")
            .to_string();
        if !["Cluster", "Local"].contains(&etp.as_str()) {
            errors.push(FieldError::not_supported(
                "spec.externalTrafficPolicy",
                &json!(etp),
                &["Cluster", "Local"],
            ));
        }
        spec.insert("externalTrafficPolicy".into(), json!(etp));
    } else if let Some(v) = str_of(spec, "externalTrafficPolicy") {
        errors.push(FieldError::invalid(
            "spec.externalTrafficPolicy",
            &json!(v),
            "may only be set for externally-accessible services",
        ));
    }
    if ty != "ExternalName" {
        let itp = str_of(spec, "internalTrafficPolicy")
            .unwrap_or("Cluster")
            .to_string();
        if !["Cluster", "Local"].contains(&itp.as_str()) {
            errors.push(FieldError::not_supported(
                "spec.internalTrafficPolicy",
                &json!(itp),
                &["Cluster", "Local"],
            ));
        }
        spec.insert("internalTrafficPolicy".into(), json!(itp));
    }

    if is_lb {
        if !spec
            .get("allocateLoadBalancerNodePorts")
            .is_some_and(Value::is_boolean)
        {
            spec.insert("allocateLoadBalancerNodePorts".into(), json!(true));
        }
        if let (Some(os), "LoadBalancer") = (&old_spec, old_ty)
            && spec.get("loadBalancerClass") != os.get("loadBalancerClass")
        {
            errors.push(FieldError::invalid(
                "spec.loadBalancerClass",
                spec.get("loadBalancerClass").unwrap_or(&Value::Null),
                "may not change once set",
            ));
        }
    } else {
        for key in [
            "loadBalancerClass",
            "allocateLoadBalancerNodePorts",
            "loadBalancerIP",
        ] {
            if spec.get(key).is_some_and(|v| !v.is_null() && v != "") {
                errors.push(FieldError::forbidden(
                    format!("spec.{key}"),
                    "may only be used when `type` is 'LoadBalancer'",
                ));
            }
        }
    }
    if let Some(ip) = str_of(spec, "loadBalancerIP")
        && ip.parse::<IpAddr>().is_err()
    {
        errors.push(FieldError::invalid(
            "spec.loadBalancerIP",
            &json!(ip),
            "must be a valid IP address",
        ));
    }

    // Ports.
    let headless_requested = str_of(spec, "clusterIP") == Some("None");
    let mut ports: Vec<Value> = spec
        .get("ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if ports.is_empty() && ty != "ExternalName" && !headless_requested {
        errors.push(FieldError::required("spec.ports", ""));
    }
    let multi = ports.len() > 1;
    let mut seen_names = HashSet::new();
    let mut seen_ports = HashSet::new();
    for (i, p) in ports.iter_mut().enumerate() {
        let Some(pm) = p.as_object_mut() else {
            errors.push(FieldError::invalid(
                format!("spec.ports[{i}]"),
                p,
                "must be an object",
            ));
            continue;
        };
        let port = pm.get("port").and_then(Value::as_u64).unwrap_or(0);
        if !(1..=65535).contains(&port) {
            errors.push(FieldError::invalid(
                format!("spec.ports[{i}].port"),
                pm.get("port").unwrap_or(&json!(0)),
                "must be between 1 and 65535, inclusive",
            ));
        }
        let proto = pm
            .get("protocol")
            .and_then(Value::as_str)
            .unwrap_or("TCP")
            .to_string();
        if !["TCP", "UDP", "SCTP"].contains(&proto.as_str()) {
            errors.push(FieldError::not_supported(
                format!("spec.ports[{i}].protocol"),
                &json!(proto),
                &["SCTP", "TCP", "UDP"],
            ));
        }
        pm.insert("protocol".into(), json!(proto));
        if !pm.contains_key("targetPort") || pm["targetPort"].is_null() {
            pm.insert("targetPort".into(), json!(port));
        }
        let name = pm
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if name.is_empty() && multi {
            errors.push(FieldError::required(format!("spec.ports[{i}].name"), ""));
        }
        if !name.is_empty() && !seen_names.insert(name.clone()) {
            errors.push(FieldError::duplicate(
                format!("spec.ports[{i}].name"),
                &json!(name),
            ));
        }
        if !seen_ports.insert((port, proto.clone())) {
            errors.push(FieldError::duplicate(
                format!("spec.ports[{i}]"),
                &json!({"port": port, "protocol": proto}),
            ));
        }
        if !external
            && pm
                .get("nodePort")
                .and_then(Value::as_u64)
                .is_some_and(|n| n != 0)
        {
            let from_old = old_spec
                .as_ref()
                .is_some_and(|os| port_had_node_port(os, port, &proto, pm.get("nodePort")));
            if from_old {
                pm.remove("nodePort");
            } else {
                errors.push(FieldError::forbidden(
                    format!("spec.ports[{i}].nodePort"),
                    &format!("may not be used when `type` is '{ty}'"),
                ));
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }

    // Cluster IPs and families.
    if ty == "ExternalName" {
        if str_of(spec, "externalName").is_none() {
            errors.push(FieldError::required("spec.externalName", ""));
        }
        for key in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
            spec.remove(key);
        }
    } else {
        families_and_ips(spec, old_spec.as_ref(), taker, &mut errors);
    }
    if !errors.is_empty() {
        return Err(errors);
    }

    // Node ports.
    let wants_node_ports = ty == "NodePort"
        || (is_lb && spec.get("allocateLoadBalancerNodePorts") != Some(&json!(false)));
    for (i, p) in ports.iter_mut().enumerate() {
        let Some(pm) = p.as_object_mut() else {
            continue;
        };
        let port = pm.get("port").and_then(Value::as_u64).unwrap_or(0);
        let proto = pm
            .get("protocol")
            .and_then(Value::as_str)
            .unwrap_or("TCP")
            .to_string();
        let given = pm
            .get("nodePort")
            .and_then(Value::as_u64)
            .filter(|n| *n != 0);
        let inherited = (given.is_none() && wants_node_ports)
            .then(|| {
                old_spec
                    .as_ref()
                    .and_then(|os| old_node_port(os, port, &proto))
            })
            .flatten();
        match given.or(inherited) {
            Some(n) => {
                let n16 = u16::try_from(n).unwrap_or(0);
                match taker.take_port(n16) {
                    Ok(()) => {
                        pm.insert("nodePort".into(), json!(n16));
                    }
                    Err(why) => {
                        errors.push(port_refusal(format!("spec.ports[{i}].nodePort"), n16, why))
                    }
                }
            }
            None if wants_node_ports => match taker.new_port() {
                Ok(n) => {
                    pm.insert("nodePort".into(), json!(n));
                }
                Err(_) => errors.push(FieldError::range_full(
                    format!("spec.ports[{i}].nodePort"),
                    "nodePort",
                )),
            },
            None => {}
        }
    }
    if ty != "ExternalName" || !ports.is_empty() {
        spec.insert("ports".into(), Value::Array(ports));
    }

    let local_lb = is_lb && spec.get("externalTrafficPolicy") == Some(&json!("Local"));
    let given_hc = spec
        .get("healthCheckNodePort")
        .and_then(Value::as_u64)
        .filter(|n| *n != 0);
    if local_lb {
        let inherited = old_spec
            .as_ref()
            .and_then(|os| os.get("healthCheckNodePort"))
            .and_then(Value::as_u64);
        match given_hc.or(inherited) {
            Some(n) => {
                let n16 = u16::try_from(n).unwrap_or(0);
                if let Err(why) = taker.take_port(n16) {
                    errors.push(port_refusal("spec.healthCheckNodePort".into(), n16, why));
                }
                spec.insert("healthCheckNodePort".into(), json!(n16));
            }
            None => match taker.new_port() {
                Ok(n) => {
                    spec.insert("healthCheckNodePort".into(), json!(n));
                }
                Err(_) => errors.push(FieldError::range_full(
                    "spec.healthCheckNodePort",
                    "nodePort",
                )),
            },
        }
    } else if given_hc.is_some() {
        let unchanged = old_spec
            .as_ref()
            .is_some_and(|os| os.get("healthCheckNodePort").and_then(Value::as_u64) == given_hc);
        if unchanged {
            spec.remove("healthCheckNodePort");
        } else {
            errors.push(FieldError::forbidden(
                "spec.healthCheckNodePort",
                "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

fn old_node_port(old_spec: &Map<String, Value>, port: u64, proto: &str) -> Option<u64> {
    old_spec.get("ports")?.as_array()?.iter().find_map(|p| {
        (p.get("port")?.as_u64()? == port
            && p.get("protocol").and_then(Value::as_str).unwrap_or("TCP") == proto)
            .then(|| p.get("nodePort")?.as_u64())
            .flatten()
    })
}

fn port_had_node_port(
    old_spec: &Map<String, Value>,
    port: u64,
    proto: &str,
    node_port: Option<&Value>,
) -> bool {
    old_node_port(old_spec, port, proto)
        .is_some_and(|n| node_port.and_then(Value::as_u64) == Some(n))
}

fn families_and_ips(
    spec: &mut Map<String, Value>,
    old_spec: Option<&Map<String, Value>>,
    taker: &mut Taker<'_>,
    errors: &mut Vec<FieldError>,
) {
    // On update an omitted clusterIP keeps the allocated ones, like the real server.
    if let Some(os) = old_spec
        && str_of(os, "type") != Some("ExternalName")
    {
        if str_of(spec, "clusterIP").is_none() && spec.get("clusterIPs").is_none_or(Value::is_null)
        {
            for key in ["clusterIP", "clusterIPs"] {
                if let Some(v) = os.get(key) {
                    spec.insert(key.into(), v.clone());
                }
            }
        }
        for key in ["ipFamilies", "ipFamilyPolicy"] {
            if spec.get(key).is_none_or(Value::is_null)
                && let Some(v) = os.get(key)
            {
                spec.insert(key.into(), v.clone());
            }
        }
        let old_first = os
            .get("clusterIPs")
            .and_then(|v| v.get(0))
            .and_then(Value::as_str);
        let new_first = str_of(spec, "clusterIP");
        if let (Some(o), Some(n)) = (old_first, new_first)
            && o != n
        {
            errors.push(FieldError::invalid(
                "spec.clusterIPs[0]",
                &json!([n]),
                "may not change once set",
            ));
            return;
        }
    }

    let mut ips: Vec<String> = spec
        .get("clusterIPs")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if let Some(ip) = str_of(spec, "clusterIP") {
        if ips.is_empty() {
            ips.push(ip.to_string());
        } else if ips[0] != ip {
            errors.push(FieldError::invalid(
                "spec.clusterIPs[0]",
                &json!(ips[0]),
                "must be same as `spec.clusterIP`",
            ));
            return;
        }
    }
    let headless = ips.first().map(String::as_str) == Some("None");

    let mut families: Vec<Family> = Vec::new();
    if let Some(list) = spec.get("ipFamilies").and_then(Value::as_array) {
        for (i, f) in list.iter().enumerate() {
            match parse_family(f) {
                Some(fam) if families.contains(&fam) => {
                    errors.push(FieldError::duplicate(format!("spec.ipFamilies[{i}]"), f));
                }
                Some(fam) => families.push(fam),
                None => errors.push(FieldError::not_supported(
                    format!("spec.ipFamilies[{i}]"),
                    f,
                    &["IPv4", "IPv6"],
                )),
            }
        }
    }
    let mut parsed_ips: Vec<IpAddr> = Vec::new();
    if !headless {
        for (i, ip) in ips.iter().enumerate() {
            match ip.parse::<IpAddr>() {
                Ok(a) => parsed_ips.push(a),
                Err(_) => errors.push(FieldError::invalid(
                    format!("spec.clusterIPs[{i}]"),
                    &json!(ip),
                    "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                )),
            }
        }
    }
    if !errors.is_empty() {
        return;
    }
    for (i, ip) in parsed_ips.iter().enumerate() {
        let fam = Family::of(ip);
        match families.get(i) {
            Some(f) if *f != fam => {
                errors.push(FieldError::invalid(
                    format!("spec.clusterIPs[{i}]"),
                    &json!(ip.to_string()),
                    &format!(
                        "expected an {} value as indicated by `ipFamilies[{i}]`",
                        f.as_str()
                    ),
                ));
            }
            Some(_) => {}
            None => families.push(fam),
        }
    }

    let policy = match str_of(spec, "ipFamilyPolicy") {
        Some(p) => p.to_string(),
        None if families.len() == 2 || parsed_ips.len() == 2 => "RequireDualStack".into(),
        None if headless
            && spec
                .get("selector")
                .is_none_or(|s| s.as_object().is_none_or(Map::is_empty)) =>
        {
            "RequireDualStack".into()
        }
        None => "SingleStack".into(),
    };
    if !POLICIES.contains(&policy.as_str()) {
        errors.push(FieldError::not_supported(
            "spec.ipFamilyPolicy",
            &json!(policy),
            POLICIES,
        ));
        return;
    }
    if policy == "SingleStack" && (families.len() > 1 || parsed_ips.len() > 1) {
        errors.push(FieldError::invalid(
            "spec.ipFamilyPolicy",
            &json!(policy),
            "must be RequireDualStack or PreferDualStack when multiple IP families are specified",
        ));
        return;
    }
    if families.is_empty() {
        families.push(Family::V4);
    }
    if policy != "SingleStack" && families.len() == 1 {
        families.push(families[0].other());
    }
    if policy == "SingleStack" {
        families.truncate(1);
    }
    spec.insert("ipFamilyPolicy".into(), json!(policy));
    spec.insert(
        "ipFamilies".into(),
        Value::Array(families.iter().map(|f| json!(f.as_str())).collect()),
    );

    if headless {
        spec.insert("clusterIP".into(), json!("None"));
        spec.insert("clusterIPs".into(), json!(["None"]));
        return;
    }
    let mut final_ips = Vec::new();
    for (i, fam) in families.iter().enumerate() {
        match parsed_ips.get(i) {
            Some(ip) => match taker.take_ip(*ip) {
                Ok(()) => final_ips.push(ip.to_string()),
                Err(why) => errors.push(ip_refusal(
                    format!("spec.clusterIPs[{i}]"),
                    &ip.to_string(),
                    *fam,
                    why,
                )),
            },
            None => match taker.new_ip(*fam) {
                Ok(ip) => final_ips.push(ip.to_string()),
                Err(_) => errors.push(FieldError::range_full(
                    format!("spec.clusterIPs[{i}]"),
                    "serviceIP",
                )),
            },
        }
    }
    if let Some(first) = final_ips.first() {
        spec.insert("clusterIP".into(), json!(first));
    }
    spec.insert("clusterIPs".into(), json!(final_ips));
}

/// Defaults and validates `status` of a Service (ingress IPs, ipMode defaulted to VIP).
pub fn prepare_status(service: &mut Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let Some(status) = service.get_mut("status").and_then(Value::as_object_mut) else {
        return errors;
    };
    let lb = status.entry("loadBalancer").or_insert_with(|| json!({}));
    let Some(ingress) = lb.get_mut("ingress").and_then(Value::as_array_mut) else {
        return errors;
    };
    for (i, ing) in ingress.iter_mut().enumerate() {
        let Some(m) = ing.as_object_mut() else {
            errors.push(FieldError::invalid(
                format!("status.loadBalancer.ingress[{i}]"),
                ing,
                "must be an object",
            ));
            continue;
        };
        if let Some(ip) = m
            .get("ip")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
        {
            if ip.parse::<IpAddr>().is_err() {
                errors.push(FieldError::invalid(
                    format!("status.loadBalancer.ingress[{i}].ip"),
                    &json!(ip),
                    "must be a valid IP address",
                ));
            }
            match m.get("ipMode").and_then(Value::as_str) {
                None => {
                    m.insert("ipMode".into(), json!("VIP"));
                }
                Some("VIP" | "Proxy") => {}
                Some(other) => errors.push(FieldError::not_supported(
                    format!("status.loadBalancer.ingress[{i}].ipMode"),
                    &json!(other),
                    &["Proxy", "VIP"],
                )),
            }
        } else if m.get("ipMode").is_some_and(|v| !v.is_null()) {
            errors.push(FieldError::forbidden(
                format!("status.loadBalancer.ingress[{i}].ipMode"),
                "may not be specified when `ip` is not set",
            ));
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(spec: Value) -> Value {
        json!({"metadata": {"name": "s"}, "spec": spec})
    }

    #[test]
    fn load_balancer_gets_cluster_ip_node_ports_and_policies() {
        let mut a = Allocators::default();
        let mut s = svc(json!({"type": "LoadBalancer", "ports": [{"port": 80}]}));
        prepare(&mut s, None, &mut a).unwrap();
        let spec = &s["spec"];
        assert!(spec["clusterIP"].as_str().unwrap().starts_with("10."));
        assert_eq!(spec["clusterIPs"].as_array().unwrap().len(), 1);
        assert_eq!(spec["ipFamilies"], json!(["IPv4"]));
        assert_eq!(spec["ipFamilyPolicy"], "SingleStack");
        assert_eq!(spec["externalTrafficPolicy"], "Cluster");
        assert_eq!(spec["sessionAffinity"], "None");
        assert_eq!(spec["ports"][0]["protocol"], "TCP");
        assert_eq!(spec["ports"][0]["targetPort"], 80);
        let np = spec["ports"][0]["nodePort"].as_u64().unwrap();
        assert!((30000..=32767).contains(&np));
    }

    #[test]
    fn dual_stack_policies_give_one_ip_per_family() {
        let cases = [
            (
                json!({"ipFamilyPolicy": "RequireDualStack"}),
                vec!["IPv4", "IPv6"],
            ),
            (
                json!({"ipFamilyPolicy": "PreferDualStack", "ipFamilies": ["IPv6"]}),
                vec!["IPv6", "IPv4"],
            ),
            (json!({"ipFamilies": ["IPv6"]}), vec!["IPv6"]),
            (
                json!({"ipFamilies": ["IPv4", "IPv6"]}),
                vec!["IPv4", "IPv6"],
            ),
        ];
        for (extra, want) in cases {
            let mut a = Allocators::default();
            let mut spec = json!({"ports": [{"port": 80}]});
            for (k, v) in extra.as_object().unwrap() {
                spec[k] = v.clone();
            }
            let mut s = svc(spec);
            prepare(&mut s, None, &mut a).unwrap();
            assert_eq!(s["spec"]["ipFamilies"], json!(want), "{extra}");
            let ips: Vec<IpAddr> = s["spec"]["clusterIPs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().parse().unwrap())
                .collect();
            let fams: Vec<&str> = ips.iter().map(|ip| Family::of(ip).as_str()).collect();
            assert_eq!(fams, want, "{extra}");
        }
    }

    #[test]
    fn invalid_specs_are_refused_and_release_what_they_took() {
        let cases = [
            (
                json!({"type": "Bogus", "ports": [{"port": 80}]}),
                "spec.type",
            ),
            (json!({"ports": []}), "spec.ports"),
            (json!({"ports": [{"port": 0}]}), "spec.ports[0].port"),
            (
                json!({"ports": [{"port": 80, "name": "a"}, {"port": 81}]}),
                "spec.ports[1].name",
            ),
            (
                json!({"ports": [{"port": 80}], "externalTrafficPolicy": "Local"}),
                "spec.externalTrafficPolicy",
            ),
            (
                json!({"ports": [{"port": 80}], "loadBalancerClass": "x"}),
                "spec.loadBalancerClass",
            ),
            (
                json!({"ports": [{"port": 80}], "ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv4", "IPv6"]}),
                "spec.ipFamilyPolicy",
            ),
            (
                json!({"ports": [{"port": 80}], "clusterIP": "192.168.1.1"}),
                "spec.clusterIPs[0]",
            ),
        ];
        for (spec, field) in cases {
            let mut a = Allocators::default();
            let mut s = svc(spec.clone());
            let errs = prepare(&mut s, None, &mut a).unwrap_err();
            assert!(errs.iter().any(|e| e.field == field), "{spec}: {errs:?}");
            assert!(a.allocate_port().is_ok());
        }
    }

    #[test]
    fn update_keeps_allocations_and_type_change_releases_node_ports() {
        let mut a = Allocators::default();
        let mut s = svc(json!({"type": "LoadBalancer", "ports": [{"port": 80}]}));
        prepare(&mut s, None, &mut a).unwrap().commit(&mut a);
        let old = s.clone();
        let node_port = old["spec"]["ports"][0]["nodePort"].as_u64().unwrap() as u16;

        // A replace that omits clusterIP and nodePort keeps both.
        let mut same = svc(json!({"type": "LoadBalancer", "ports": [{"port": 80}]}));
        let plan = prepare(&mut same, Some(&old), &mut a).unwrap();
        assert!(
            plan.taken.is_empty() && plan.released.is_empty(),
            "{plan:?}"
        );
        assert_eq!(same["spec"]["clusterIP"], old["spec"]["clusterIP"]);
        assert_eq!(
            same["spec"]["ports"][0]["nodePort"],
            old["spec"]["ports"][0]["nodePort"]
        );

        let mut to_cluster_ip = old.clone();
        to_cluster_ip["spec"]["type"] = json!("ClusterIP");
        to_cluster_ip["spec"]
            .as_object_mut()
            .unwrap()
            .remove("externalTrafficPolicy");
        let plan = prepare(&mut to_cluster_ip, Some(&old), &mut a).unwrap();
        assert_eq!(plan.released, vec![Grant::Port(node_port)]);
        assert!(to_cluster_ip["spec"]["ports"][0].get("nodePort").is_none());
    }

    #[test]
    fn status_ingress_ip_gets_ip_mode_vip_and_bad_ips_are_refused() {
        let mut s = json!({"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}});
        assert!(prepare_status(&mut s).is_empty());
        assert_eq!(s["status"]["loadBalancer"]["ingress"][0]["ipMode"], "VIP");
        let mut bad = json!({"status": {"loadBalancer": {"ingress": [{"ip": "nope"}]}}});
        assert_eq!(
            prepare_status(&mut bad)[0].field,
            "status.loadBalancer.ingress[0].ip"
        );
    }
}
