import Sluice
import SluiceStream

/// The stream jobs compiled into the `sluice` binary: aggregations over an event log, run by
/// `sluice lambda`, `sluice kappa` and `sluice compare`.
public enum StreamJobs {
    /// Every stream job, in the order the CLI lists them.
    public static var all: [StreamJob] { [eventcounts, distinctusers, flightdelays, keycounts, sliding, sessions, slidingOdd, hopping] }

    /// Sliding windows over top-K, min and max (a test fixture).
    static let sliding = StreamJob(
        "test-sliding", summary: "Top 3, min and max of value per key in 2-minute windows every 30 s",
        allowedLateness: 30 * EventTime.second, hidden: true
    ) { schema in
        let key = try schema.column("key"), value = try schema.column("value")
        return Aggregation(key: { $0.bytes(key) }, value: { e in
            let v = try e.int(value)
            return Pair([v], Pair(Optional(v), Optional(v)))
        }, monoid: Both(TopK<Int>(3), Both(Min<Int>(), Max<Int>())),
        window: .sliding(size: 2 * EventTime.minute, slide: 30 * EventTime.second))
    }

    /// Sliding windows whose size (50 s) is not a multiple of the slide (20 s): count and sum (a
    /// test fixture of the window oracle).
    static let slidingOdd = StreamJob("test-oracle-sliding-50s-20s", summary: "Events and sum of value, 50 s windows every 20 s",
                                      hidden: true) { schema in
        let key = try schema.column("key"), value = try schema.column("value")
        return Aggregation(key: { $0.field(key) }, value: { Pair(1, try $0.int(value)) }, monoid: Both(Count(), Sum<Int>()),
                           window: .sliding(size: 50 * EventTime.second, slide: 20 * EventTime.second))
    }

    /// Hopping windows with gaps (10 s windows every 30 s): count and sum (a test fixture).
    static let hopping = StreamJob("test-oracle-hopping-10s-30s", summary: "Events and sum of value, 10 s windows every 30 s",
                                   hidden: true) { schema in
        let key = try schema.column("key"), value = try schema.column("value")
        return Aggregation(key: { $0.field(key) }, value: { Pair(1, try $0.int(value)) }, monoid: Both(Count(), Sum<Int>()),
                           window: .sliding(size: 10 * EventTime.second, slide: 30 * EventTime.second))
    }

    /// Session windows of events and mean value per user (a test fixture).
    static let sessions = StreamJob(
        "test-sessions", summary: "Events and mean value per user session (gap 5 s)",
        allowedLateness: 30 * EventTime.second, hidden: true
    ) { schema in
        let user = try schema.column("user"), value = try schema.column("value")
        return Aggregation(key: { $0.bytes(user) }, value: { Pair(1, MeanValue(try $0.int(value))) },
                           monoid: Both(Count(), Mean()), window: .session(gap: 5 * EventTime.second))
    }
}

/// `eventcounts`: CSV events `ts,user,key,value` (`sluice gen events`) → per key and
/// event-time minute, the number of events and the sum of `value`.
let eventcounts = StreamJob(
    "eventcounts", summary: "Events and sum of value per key per event-time minute (events ts,user,key,value)",
    allowedLateness: EventTime.minute
) { schema in
    let key = try schema.column("key"), value = try schema.column("value")
    return Aggregation(key: { $0.field(key) }, value: { Pair(1, try $0.int(value)) },
                       monoid: Both(Count(), Sum<Int>()), window: .tumbling(size: EventTime.minute))
}

/// `distinctusers`: distinct users per key, with HyperLogLog (exact while a key has few users).
let distinctusers = StreamJob(
    "distinctusers", summary: "Distinct users per key, HyperLogLog p=12 (events ts,user,key,value)",
    allowedLateness: EventTime.minute
) { schema in
    let key = try schema.column("key"), user = try schema.column("user")
    let hll = HyperLogLog(precision: 12)
    return Aggregation(key: { $0.bytes(key) }, value: { hll.single($0.field(user)) }, monoid: hll)
}

/// `keycounts`: events per key — the speed layer's throughput benchmark.
let keycounts = StreamJob(
    "keycounts", summary: "Events per key (events with a key column)", allowedLateness: EventTime.minute
) { schema in
    let key = try schema.column("key")
    return Aggregation(key: { $0.field(key) }, value: { _ in 1 }, monoid: Count())
}

/// `flightdelays`: nycflights13 departures and mean departure delay per carrier per
/// scheduled hour. Its feed appends the flights in order of actual departure while the event
/// time is the scheduled departure, so a flight's delay is its lateness.
let flightdelays = StreamJob(
    "flightdelays", summary: "Departures and mean departure delay per carrier per scheduled hour (nycflights13)",
    allowedLateness: EventTime.hour, feed: flightsFeed
) { schema in
    let carrier = try schema.column("carrier"), delay = try schema.column("dep_delay")
    return Aggregation(key: { e in e.isNull(delay) ? nil : e.field(carrier) }, value: { MeanValue(try $0.int(delay)) },
                       monoid: Mean(), window: .tumbling(size: EventTime.hour))
}

/// The flights that departed (cancelled ones, with an empty `dep_delay`, are left out), in
/// order of actual departure; the event time is the scheduled departure in UTC, `time_hour`
/// plus `minute`. Two columns are added: `sched_dep_utc` and `dep_actual_utc`.
let flightsFeed = EventFeed(
    summary: "nycflights13 flights in order of actual departure; event time = scheduled departure (time_hour + minute)",
    defaultInputs: ["datasets/nycflights13/flights.csv.gz"]
) { inputs in
    var flights: [(actual: Int64, index: Int, event: EncodedEvent)] = []
    var columns: [String] = []
    for path in inputs {
        let source: ByteSource = path.hasSuffix(".gz") ? try GzipSource(path: path) : try FileByteSource(path: path)
        let reader = try CSVReader(source, hasHeader: true)
        guard let header = reader.header else { continue }
        if columns.isEmpty {
            columns = header.names
        } else if header.names != columns {
            throw InputError(source: path, reason: "columns differ from those of \(inputs[0])")
        }
        let timeHour = try header.column("time_hour"), minute = try header.column("minute"), delay = try header.column("dep_delay")
        try reader.readAll { r in
            guard let d = try r.optionalInt(delay) else { return }
            let hour = try r.withField(timeHour) { p -> Int64 in
                guard let t = EventTime.parse(p, format: .iso8601) else {
                    throw InputError(source: r.sourceName, line: r.line, reason: "time_hour is not an ISO 8601 time")
                }
                return t
            }
            let scheduled = hour + Int64(try r.int(minute)) * EventTime.minute
            let actual = scheduled + Int64(d) * EventTime.minute
            let fields = (0..<r.count).map { r.bytes($0) } + [Array(EventTime.iso(scheduled).utf8), Array(EventTime.iso(actual).utf8)]
            flights.append((actual, flights.count, EncodedEvent(time: scheduled, fields: fields)))
        }
    }
    flights.sort { ($0.actual, $0.index) < ($1.actual, $1.index) }
    return (LogSchema(columns: columns + ["sched_dep_utc", "dep_actual_utc"], timeField: "sched_dep_utc"), flights.map(\.event))
}
