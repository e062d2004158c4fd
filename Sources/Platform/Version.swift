/// The version every Sluice tool prints with `--version`. One place, bumped per release.
public enum SluiceVersion {
    public static let string = "0.5.0"
}
