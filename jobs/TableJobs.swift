import Sluice

/// Rounds to two decimals for output.
func twoDecimals(_ x: Double) -> Double { (x * 100).rounded() / 100 }

/// `eventsum`: CSV `ts,user,key,value` → key<TAB>sum of value.
let eventsum = Job(
    "eventsum", summary: "Sums `value` per `key` over CSV events with header ts,user,key,value: key<TAB>sum",
    defaultInputs: ["datasets/events.csv"]
) { ctx in
    // Borrowed key views into a byte-key combine table: no allocation per row.
    ctx.csv(ctx.inputs) { r in (try r.view(2), try r.int(3)) }
        .reduceByKey(+)
        .write(to: try ctx.output)
}

/// `keyusers`: per key, its events and distinct users — a grouping that needs all of a key's
/// rows in one place (no map-side combine), so a hot key shows skew handling at work.
let keyusers = Job(
    "keyusers", summary: "Events and distinct users per `key` over CSV events (ts,user,key,value), by groupByKey: key<TAB>events<TAB>users",
    defaultInputs: ["datasets/events.csv"]
) { ctx in
    ctx.csv(ctx.inputs) { r in (r.withField(2) { Bytes($0) }, r.withField(1) { Bytes($0) }) }
        .groupByKey()
        .mapValues { users in Pair(users.count, Set(users).count) }
        .write(to: try ctx.output)
}

let flightsPath = "datasets/nycflights13/flights.csv.gz"

/// Departure delay of a flight, nil when cancelled (empty or NA `dep_delay`).
func departureDelay(_ r: CSVRecord) throws -> Int? { try r.optionalInt(5) }

/// `carrierdelays`: mean departure delay per carrier, with the airline's name.
let carrierdelays = Job(
    "carrierdelays", summary: "Mean departure delay per carrier (cancelled flights skipped): carrier<TAB>name<TAB>flights<TAB>mean delay",
    parameters: [JobParameter("airlines", help: "airlines.csv (carrier,name)", default: "datasets/nycflights13/airlines.csv")],
    defaultInputs: [flightsPath]
) { ctx in
    let delays = ctx.csv(ctx.inputs) { r -> (Bytes, Pair<Int, Int>)? in
        guard let delay = try departureDelay(r) else { return nil }
        return (r.withField(9) { Bytes($0) }, Pair(delay, 1))
    }.reduceByKey { Pair($0.first + $1.first, $0.second + $1.second) }
    let names = ctx.csv([try ctx.parameter("airlines")]) { r in (r.withField(0) { Bytes($0) }, try r.string(1)) }
    delays.leftOuterJoin(names)
        .map { kv in
            let (carrier, (stats, name)) = kv
            return Triple(carrier, name ?? "", Pair(stats.second, twoDecimals(Double(stats.first) / Double(stats.second))))
        }
        .write(to: try ctx.output) { t, w in
            t.first.writeText(to: &w); w.write(0x09)
            t.second.writeText(to: &w); w.write(0x09)
            t.third.first.writeText(to: &w); w.write(0x09)
            t.third.second.writeText(to: &w)
        }
}

/// `planedelays`: flights joined with planes (on tailnum): flights and mean delay per manufacturer.
let planedelays = Job(
    "planedelays", summary: "Flights ⋈ planes on tailnum: manufacturer<TAB>flights<TAB>mean departure delay",
    parameters: [JobParameter("planes", help: "planes.csv (tailnum,…,manufacturer,…)", default: "datasets/nycflights13/planes.csv")],
    defaultInputs: [flightsPath]
) { ctx in
    let flights = ctx.csv(ctx.inputs) { r -> (Bytes, Int)? in
        guard let delay = try departureDelay(r), !r.withField(11, { $0.isEmpty }) else { return nil }
        return (r.withField(11) { Bytes($0) }, delay)
    }
    let planes = ctx.csv([try ctx.parameter("planes")]) { r in (r.withField(0) { Bytes($0) }, try r.string(3)) }
    let joined: Dataset<(Bytes, (Int, String))> = flights.join(planes)
    let perMaker: Dataset<(String, Pair<Int, Int>)> = joined.map { kv in (kv.1.1, Pair(kv.1.0, 1)) }
    let sums: Dataset<(String, Pair<Int, Int>)> = perMaker.reduceByKey { Pair($0.first + $1.first, $0.second + $1.second) }
    sums.map { (kv: (String, Pair<Int, Int>)) -> (String, Pair<Int, Double>) in
        (kv.0, Pair(kv.1.second, twoDecimals(Double(kv.1.first) / Double(kv.1.second))))
    }.write(to: try ctx.output)
}
